"""Hostile input at every declared endpoint (hypothesis): never a 5xx, every refusal in the one JSON error shape.

Each example is a request to one endpoint of `declare.ENDPOINTS` with arbitrary bytes or
JSON-like text as its body (nested deep, keys given twice, `NaN`, lone surrogates), any
content type, any method, hostile path parameters and query strings, and a good, a bad
or no key. Runs on SQLite and PostgreSQL. Also: the depth the body reader counts, without
recursion, is the depth of the JSON it reads.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.http.declare import ENDPOINTS
from service.http.errors import ApiError
from service.http.json_body import MAX_DEPTH, parse
from tests.support import TEST_KEY

EXAMPLES = 150
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CONTENT_TYPES = [None, "application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
                 "application/json; charset=latin-1", "APPLICATION/JSON", "application/json;", "multipart/form-data"]
IDS = ["acc_1", "u_1", "u_2", "u_3", ".", "..", "u\u202eadmin", "u_1\u200b", "u_1 ", "%00", "a" * 300, "\ud800", "٣"]
QUERY_NAMES = ["acting_user", "after", "limit", "account", "page_token", "at_least_revision", "x", ""]
QUERY_VALUES = ["u_1", "", "0", "+5", " 5", "5 ", "٣", "-1", "9223372036854775808", "1e3", "u_1\u202e", "\x00", "%ZZ"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.sampled_from(IDS + ["User", "Account", "read", "admin", "reader"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["actor", "action", "resource", "type", "id", "checks", "user", "role", "name",
                                       "admin", "acting_user", "explain", "page_size", "page_token", "x"]) | st.text(max_size=8),
                      children, max_size=5),
    max_leaves=25,
)


@st.composite
def bodies(draw) -> bytes | None:
    kind = draw(st.sampled_from(["none", "json", "bytes", "deep", "duplicate", "constant", "surrogate", "wide"]))
    if kind == "none":
        return None
    if kind == "json":
        return json.dumps(draw(json_values), ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "deep":
        depth = draw(st.integers(MAX_DEPTH - 2, 3 * MAX_DEPTH) | st.just(100_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"b":[', "]}]")]))
        closed = draw(st.booleans())
        return (opener * depth + "1" + (closer * depth if closed else "")).encode()
    if kind == "duplicate":
        key = draw(st.sampled_from(["id", "actor", "action", "resource", "type", "user", "role", "checks"]))
        first, second = draw(json_values), draw(json_values)
        inner = f'"{key}": {json.dumps(first)}, "{key}": {json.dumps(second)}'
        return draw(st.sampled_from([f"{{{inner}}}", f'{{"actor": {{{inner}}}}}', f'{{"checks": [{{{inner}}}]}}'])).encode()
    if kind == "constant":
        constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000]))
        return f'{{"actor": {{"type": "User", "id": "u_1"}}, "at_least_revision": {constant}}}'.encode()
    if kind == "surrogate":
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\ud83d", "\\ude00x", "\\ud83d\\ude00"]))
        return f'{{"id": "acc_{escape}", "name": "n{escape}", "admin": "u_1", "user": "{escape}"}}'.encode()
    return json.dumps({"checks": [draw(json_values)] * draw(st.integers(0, 1200))}).encode()


def _mostly(usual, hostile, share: int = 8):
    """`usual` in `share` of 10 examples, else one of `hostile`: most requests reach the body reader."""
    return st.integers(0, 9).flatmap(lambda roll: usual if roll < share else hostile)


@st.composite
def requests(draw) -> tuple[str, str, bytes | None, dict]:
    declared = draw(st.sampled_from(ENDPOINTS))
    method = draw(_mostly(st.just(declared.method), st.sampled_from(METHODS)))
    hostile_id = st.sampled_from(IDS) | st.text(min_size=1, max_size=12)
    path = "/".join(
        quote(draw(_mostly(st.sampled_from(["acc_1", "u_1", "u_2"]), hostile_id)), safe="", errors="surrogatepass")
        if part.startswith("<") else part
        for part in declared.rule.split("/")
    )
    pair = st.tuples(st.sampled_from(QUERY_NAMES), st.sampled_from(QUERY_VALUES) | st.text(max_size=10))
    pairs = draw(_mostly(st.just([]), st.lists(pair, min_size=1, max_size=3), share=6))
    if pairs:
        path += "?" + "&".join(f"{quote(name)}={quote(value, safe='%', errors='surrogatepass')}" for name, value in pairs)
    headers = {}
    hostile_type = st.sampled_from(CONTENT_TYPES) | st.text(max_size=30).filter(lambda t: t.isprintable())
    content_type = draw(_mostly(st.just("application/json"), hostile_type, share=6))
    if content_type is not None:
        headers["Content-Type"] = content_type
    key = draw(_mostly(st.just(TEST_KEY), st.sampled_from([None, "authz_0123456789ab_x", "authz_" + "x" * 8000]), 9))
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return method, path, draw(bodies()), headers


@pytest.fixture
def seeded_app(app, api):
    api.create_account("acc_1", "u_1")
    api.invite("acc_1", "u_2", "reader")
    return app


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=requests())
def test_no_request_gets_a_5xx_and_every_refusal_is_the_json_error_shape(seeded_app, request):
    method, path, body, headers = request
    response = seeded_app.test_client().open(path, method=method, data=body, headers=headers)
    assert response.status_code < 500, (method, path, body and body[:200], headers, response.data[:500])
    assert response.mimetype == "application/json", (method, path, response.status_code, response.data[:200])
    answer = json.loads(response.data)
    if response.status_code >= 400:
        assert set(answer) == {"error"} and set(answer["error"]) == {"code", "message"}, answer
        assert isinstance(answer["error"]["code"], str) and isinstance(answer["error"]["message"], str), answer
    if response.status_code == 405:
        assert response.headers["Allow"], (method, path)


def _depth(value) -> int:
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _nested(leaf, levels: int, names: list[str]):
    for level in range(levels):
        name = names[level % len(names)] if names else ""
        leaf = {name: leaf} if level % 2 else [leaf, name]
    return leaf


@settings(max_examples=300, deadline=None, database=None)
@given(value=json_values, levels=st.integers(0, 2 * MAX_DEPTH),
       names=st.lists(st.text(alphabet='[]{}"\\ab\u00e9\u2028', max_size=6), max_size=4), ascii_only=st.booleans())
def test_the_depth_counted_on_the_bytes_is_the_depth_of_the_json(value, levels, names, ascii_only):
    document = _nested(value, levels, names)
    raw = json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    try:
        parsed = parse(raw, "application/json")
    except ApiError as error:
        if "surrogate" in error.message or "not UTF-8" in error.message or "more than once" in error.message:
            return  # refused for what the value holds, not for its depth
        assert _depth(document) > MAX_DEPTH, error.message
        assert "levels deep" in error.message
        return
    assert _depth(document) <= MAX_DEPTH
    assert parsed == document or parsed != parsed  # read as written (a float may not equal itself: never NaN here)
