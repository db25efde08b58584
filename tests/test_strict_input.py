"""SPEC "Strict input": one reader of every JSON body, strict query strings, and every error in the JSON shape.

Each refused request must answer the error shape with its status and write nothing; each
case runs on SQLite and PostgreSQL (`api`). The parser differentials of issue 11 are here
by name: duplicate keys, lone surrogates, non-finite numbers, depth, content type.
"""

from __future__ import annotations

import base64
import json

import pytest

from service.http.json_body import MAX_DEPTH, is_json_media_type
from tests.support import TEST_KEY, account, user

A = "acc_1"
CHECK = {"actor": user("u_1"), "action": "read", "resource": account(A)}
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


@pytest.fixture
def seeded(api):
    api.create_account(A, "u_1")
    api.invite(A, "u_2", "reader")
    return api


def refused(answer, status: int, code: str, words: str = "") -> None:
    assert answer.status == status, answer
    error = answer.json["error"]
    assert set(error) == {"code", "message"} and error["code"] == code, answer
    assert words in error["message"], error["message"]


def nested(depth: int) -> bytes:
    """An authorize body whose `explain` is `depth` - 1 arrays deep (so the body is `depth` levels)."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return ('{"actor": {"type": "User", "id": "u_1"}, "action": "read", "resource": {"type": "Account", "id": "acc_1"}, '
            f'"explain": {inner}}}').encode()


# -- the content type ----------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx",
                                          "application/json; charset=latin-1", "multipart/form-data; boundary=x",
                                          "application/problem+json"])
def test_a_body_that_is_not_declared_json_is_a_415(app, seeded, content_type):
    before = seeded.revision()
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    for method, path, body in [("POST", "/v1/authorize", CHECK),
                               ("POST", f"/v1/accounts/{A}/members", {"user": "u_3", "role": "reader"})]:
        response = app.test_client().open(path, method=method, data=json.dumps(body).encode(), headers=headers)
        assert response.status_code == 415, response.data
        assert response.json["error"]["code"] == "unsupported_media_type"
    assert seeded.revision() == before


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON", "application/json; charset=utf-8",
                                          "application/json;charset=UTF-8", 'application/json; charset="utf-8"'])
def test_json_with_parameters_is_accepted(seeded, content_type):
    answer = seeded.post("/v1/authorize", CHECK, headers={"Content-Type": content_type})
    assert answer.status == 200 and answer.json["allowed"] is True, answer


def test_the_media_type_reader():
    assert is_json_media_type("application/json ; charset=utf8")
    assert not is_json_media_type("") and not is_json_media_type("application/json5")


def test_no_body_needs_no_content_type(app, seeded):
    response = app.test_client().delete(f"/v1/accounts/{A}/members/u_2?acting_user=u_1", headers=AUTH)
    assert response.status_code == 200, response.data


# -- bytes, text, depth, keys, numbers ----------------------------------------------

PARSER_DIFFERENTIALS = [
    # (raw body, words of the message)
    (b'{"actor": {"type": "User", "id": "u_1"}, "action": "read", "resource": {"type": "Account", "id": "acc\xff"}}',
     "not UTF-8"),
    (b"\xef\xbb\xbf" + json.dumps(CHECK).encode(), "not valid JSON"),  # a byte-order mark
    (b"\xed\xa0\x80", "not UTF-8"),  # a surrogate encoded as UTF-8
    (b"\xc2\xa0", "not valid JSON"),  # a no-break space: not JSON's whitespace, so not an empty body
    (json.dumps({**CHECK, "actor": {"type": "User", "id": "u_1\ud800"}}).encode(), "lone UTF-16 surrogate"),
    (b'{"actor": {"type": "User", "id": "\\udfff"}, "action": "read", "resource": {"type": "Account", "id": "a"}}',
     "lone UTF-16 surrogate"),
    (b'{"\\ud800": 1}', "lone UTF-16 surrogate"),
    (b'{"actor": {"type": "User", "id": "u_nobody", "id": "u_client"}, "action": "read", '
     b'"resource": {"type": "Account", "id": "acc_1"}}', "'id' is given more than once"),
    (b'{"action": "read", "action": "read", "actor": {"type": "User", "id": "u_1"}, '
     b'"resource": {"type": "Account", "id": "acc_1"}}', "'action' is given more than once"),
    (b'{"checks": [{"actor": {"type": "User", "id": "u_1"}, "action": "read", '
     b'"resource": {"type": "Account", "id": "acc_1", "type": "Account"}}]}', "'type' is given more than once"),
    (json.dumps({**CHECK, "at_least_revision": 1}).encode()[:-1] + b', "at_least_revision": NaN}', "NaN"),
    (json.dumps(CHECK).encode()[:-1] + b', "at_least_revision": Infinity}', "Infinity"),
    (json.dumps(CHECK).encode()[:-1] + b', "at_least_revision": -Infinity}', "-Infinity"),
    (json.dumps(CHECK).encode()[:-1] + b', "at_least_revision": 1e999}', "too large a number"),
    (json.dumps(CHECK).encode()[:-1] + b', "at_least_revision": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (nested(MAX_DEPTH + 1), f"more than {MAX_DEPTH} levels deep"),
    (b"[" * 1_000_000, f"more than {MAX_DEPTH} levels deep"),
    (b'{"a": ' * 100_000, f"more than {MAX_DEPTH} levels deep"),
    (b"[" * 500_000 + b"]" * 499_999, f"more than {MAX_DEPTH} levels deep"),
]


@pytest.mark.parametrize(("raw", "words"), PARSER_DIFFERENTIALS, ids=[words for _raw, words in PARSER_DIFFERENTIALS])
@pytest.mark.parametrize("path", ["/v1/authorize", "/v1/authorize/batch", "/v1/actions", "/v1/list", "/v1/accounts"])
def test_a_body_two_parsers_could_read_two_ways_is_a_400(seeded, raw, words, path):
    before = seeded.revision()
    refused(seeded.post(path, raw=raw), 400, "invalid_json", words)
    assert seeded.revision() == before


def test_the_depth_limit_counts_levels_not_brackets(seeded):
    """32 levels are JSON the schema then reads; brackets inside strings are text, not levels."""
    at_limit = seeded.post("/v1/authorize", raw=nested(MAX_DEPTH))
    refused(at_limit, 400, "invalid_request", "explain")  # read as JSON; the schema refuses a list for `explain`
    wide = {"checks": [CHECK] * 1000}  # thousands of brackets, three levels deep
    assert seeded.post("/v1/authorize/batch", wide).status == 200
    in_strings = {**CHECK, "actor": user("[" * 100)}
    refused(seeded.post("/v1/authorize", in_strings), 400, "invalid_request", "actor.id")


def test_paired_surrogates_and_escapes_are_text_as_usual(seeded):
    """A pair of escapes is one character (here in a name); only half a pair is refused."""
    raw = b'{"id": "acc_emoji", "name": "Caf\\u00e9 \\ud83d\\ude00", "admin": "u_1"}'
    created = seeded.post("/v1/accounts", raw=raw)
    assert created.status == 201, created
    assert seeded.get("/v1/accounts/acc_emoji").json["name"] == "Café \U0001f600"


def test_numbers_that_are_finite_are_read_as_before(seeded):
    refused(seeded.post("/v1/authorize", {**CHECK, "at_least_revision": 1.5}), 400, "invalid_request",
            "at_least_revision")
    assert seeded.post("/v1/authorize", raw=json.dumps(CHECK).encode()[:-1] + b', "at_least_revision": 1}').status == 200


# -- a body where none is taken --------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", f"/v1/accounts/{A}"),
    ("GET", f"/v1/accounts/{A}/members?acting_user=u_1"),
    ("GET", f"/v1/accounts/{A}/billing-settings"),
    ("GET", "/v1/changes"),
    ("GET", "/v1/changes/verify"),
    ("GET", "/v1/policy"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
])
def test_a_body_sent_where_none_is_taken_is_a_400(seeded, method, path):
    refused(seeded.call(method, path, {"acting_user": "u_2"}), 400, "unexpected_body", "takes no body")
    refused(seeded.call(method, path, raw=b"x"), 400, "unexpected_body")
    assert seeded.call(method, path).status == 200


def test_a_huge_body_where_none_is_taken_is_a_413(seeded):
    refused(seeded.call("GET", "/v1/changes", raw=b" " * 1_100_000), 413, "body_too_large")


# -- query strings ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["+5", " 5", "5 ", "%E2%80%8B5", "%D9%A3", "5_0", "0x5", "5.0", "-0", "1e3", "%EF%BC%95"])
@pytest.mark.parametrize("name", ["after", "limit"])
def test_query_integers_are_plain_ascii_digits(seeded, name, value):
    refused(seeded.get(f"/v1/changes?{name}={value}"), 400, "invalid_request", name)


@pytest.mark.parametrize("query", ["after=%2B5", "after=%205", "limit=5%20", "limit=%D9%A3", "after=9223372036854775808"])
def test_every_audit_query_reads_integers_as_strictly(seeded, query):
    refused(seeded.get(f"/v1/decisions?{query}"), 400, "invalid_request", query.split("=")[0])


def test_plain_digits_are_read(seeded):
    answer = seeded.get("/v1/changes?after=0001&limit=2")
    assert answer.status == 200 and [entry["revision"] for entry in answer.json["changes"]] == [2, 3]


def _token(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode()


BAD_TOKENS = [
    "garbage!",
    _token(b'{"after": "acc\\u0000x"}'),
    _token(b'{"after": "acc\x00"}'),
    _token(b"\x00" * 30),
    _token(json.dumps({"after": "x" * 600}).encode()),
    "A" * 1000,
    _token(b'{"after":"acc_1"}'),  # the right id, but not as the service writes it
    _token(b'{"after": "acc_1", "after": "acc_2"}'),
    _token(b'{"after": 7}'),
    _token(b'{"after": "../acc"}'),
    _token(b'{"after": "acc_1"}') + "==",
    _token(b'[' * 600),
]


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_a_page_token_the_service_did_not_give_is_a_400(seeded, token):
    body = {"actor": user("u_1"), "action": "read", "resource_type": "Account", "page_size": 1, "page_token": token}
    refused(seeded.post("/v1/list", body), 400, "invalid_page_token" if len(token) <= 1000 else "invalid_request",
            "page_token")


def test_the_tokens_the_service_gives_page_through(seeded):
    seeded.create_account("acc_2", "u_1")
    body = {"actor": user("u_1"), "action": "read", "resource_type": "Account", "page_size": 1}
    first = seeded.post("/v1/list", body).json
    second = seeded.post("/v1/list", {**body, "page_token": first["next_page_token"]}).json
    assert first["ids"] + second["ids"] == [A, "acc_2"] and second["next_page_token"] is None


# -- every error is JSON ----------------------------------------------------------------


def test_unknown_paths_answer_a_json_404(seeded):
    for path in ("/v1/nothing", "/", "/v1/accounts/acc_1/nothing", "/v2/authorize"):
        refused(seeded.get(path), 404, "not_found")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/v1/authorize", {"POST"}),
    ("PUT", f"/v1/accounts/{A}/members", {"GET", "POST"}),
    ("POST", f"/v1/accounts/{A}/members/u_2", {"PATCH", "DELETE"}),
    ("DELETE", "/v1/changes", {"GET"}),
    ("POST", "/healthz", {"GET"}),
])
def test_a_wrong_method_answers_a_json_405_with_allow(app, seeded, method, path, allowed):
    response = app.test_client().open(path, method=method, headers=AUTH)
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"
    listed = {name.strip() for name in response.headers["Allow"].split(",")}
    assert allowed <= listed and listed <= allowed | {"HEAD", "OPTIONS"}, listed


def test_a_body_over_the_limit_answers_a_json_413(app, seeded):
    response = app.test_client().post(
        "/v1/authorize", data=b"{" + b" " * 1_100_000 + b"}", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413 and response.json["error"]["code"] == "body_too_large"


# -- the auditor's query strings --------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/audit/changes?after=%2B5", "/audit/changes?after=%205", "/audit/changes?after=%D9%A3",
    "/audit/changes?after=9223372036854775808", "/audit/policy?as_of_revision=9223372036854775808",
    "/audit/changes?after=1&after=2", "/audit/changes?account=acc_1&account=acc_2", "/audit/matrix?surprise=1",
    "/audit/?accounts_after=a&accounts_after=b", "/audit/?surprise=1", "/audit/policy?colour=red",
    "/audit/explain?actor=u_1&action=read&type=Account&id=acc_1&surprise=1",
    "/audit/explain?actor=u_1&actor=u_2&action=read&type=Account&id=acc_1",
    "/audit/explain?actor=u_1&action=read&type=Account&id=acc_1&as_of_revision=%2B1",
])
def test_the_auditor_pages_read_query_strings_as_strictly(app, seeded, path):
    response = app.test_client().get(path, headers=AUTH)
    assert response.status_code == 400, (path, response.status_code)
    assert seeded.revision() == 3


def test_the_auditor_pages_still_read_their_own_links(app, seeded):
    client = app.test_client()
    for path in ("/audit/changes?after=1", "/audit/changes?account=acc_1", "/audit/matrix", "/audit/?accounts_after=a",
                 "/audit/explain?actor=u_1&action=read&type=Account&id=acc_1&as_of_revision=2",
                 "/audit/explain?actor=u_1&action=read&type=Account&id=acc_1&account=&owner=&user=&as_of_revision="):
        assert client.get(path, headers=AUTH).status_code == 200, path
