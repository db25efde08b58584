"""The Python client library: the story and the contract against the real server, retries and fail-closed against a fake."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from models.database import Database
from service.client import (
    AuthzClient,
    BadRequest,
    Conflict,
    Decision,
    Forbidden,
    NotFound,
    Unauthorized,
    Unavailable,
)
from service.core.api_keys import create_key
from service.core.invariants import PAYMENT_MANAGER_PROTECTED
from tests.servers import free_port, running_server
from tests.support import TEST_KEY

# The machines running the suite are shared and noisy: a real server may take a while to answer.
REAL_SERVER_TIMEOUT = 15.0

B = "acc_b"
CLIENT, PARTNER, SUPPORT = "u_client", "u_partner", "u_support"
PM_CARD = {"type": "PaymentMethod", "id": "pm_partner", "account": B, "owner": PARTNER}
SUBSCRIPTION = {"type": "Subscription", "id": "sub_b", "account": B}
INVOICE = {"type": "SubscriptionInvoice", "id": "inv_1", "account": B}
SUBSCRIPTION_PAGE = ["view_subscription", "manage_subscription", "manage_billing_settings", "manage_payment_methods"]


def account(account_id: str) -> dict:
    return {"type": "Account", "id": account_id}


@pytest.fixture
def server(database_url) -> Iterator[str]:
    """The real service (granian, two workers) on this test's database; its base URL."""
    with running_server(database_url) as base:
        yield base


@pytest.fixture
def authz(server) -> Iterator[AuthzClient]:
    with AuthzClient(server, TEST_KEY, timeout=REAL_SERVER_TIMEOUT) as client:
        yield client


# -- against the real server -----------------------------------------------------


def test_the_story_through_the_client(authz):
    # Set-up: sign-up, the partner invited as payment manager by the client, the subscription restricted.
    created = authz.create_account(B, "Entreprise B", CLIENT)
    base = created["revision"] - 1
    assert created["members"] == [{"user": CLIENT, "role": "admin"}]
    invited = authz.invite(B, PARTNER, "payment_manager", acting_user=CLIENT)
    assert invited["role"] == "payment_manager"
    settings = authz.update_billing_settings(
        B, restrict_subscription_to_payment_manager=True, auto_add_subscription_invoices_to_purchases=False,
        acting_user=PARTNER,
    )
    assert settings["warnings"] == []
    assert authz.last_revision == settings["revision"] == base + 3

    # Result: the partner manages the subscription and sees no workspace page; the admin, the reverse.
    assert authz.actions(PARTNER, account(B)) == sorted([*SUBSCRIPTION_PAGE, "read"])
    for action in SUBSCRIPTION_PAGE:
        assert authz.is_allowed(PARTNER, action, account(B)), action
        assert not authz.is_allowed(CLIENT, action, account(B)), action
    assert authz.is_allowed(CLIENT, "view_workspace", account(B))
    assert not authz.is_allowed(PARTNER, "view_workspace", account(B))
    assert not authz.is_allowed(CLIENT, "view", INVOICE)
    denied = authz.authorize(CLIENT, "view_subscription", account(B), explain=True)
    assert isinstance(denied, Decision) and denied.allowed is False and denied.revision >= 3
    assert "restricts subscription management to its payment manager" in denied.explanation["summary"]
    assert authz.billing_settings(B, acting_user=PARTNER)["restrict_subscription_to_payment_manager"] is True
    with pytest.raises(Forbidden):
        authz.billing_settings(B, acting_user=CLIENT)

    # The payment manager cannot be removed while the account is restricted: the product's words.
    with pytest.raises(Conflict) as refused:
        authz.remove_member(B, PARTNER, acting_user=CLIENT)
    assert refused.value.status == 409 and refused.value.code == "payment_manager_protected"
    assert refused.value.message == PAYMENT_MANAGER_PROTECTED == (
        "Subscription Manager cannot be deleted when the admin does not have access to manage subscriptions. "
        "Please log in as a Subscription Manager and enable subscription access for the admin via the subscription page"
    )
    assert authz.is_allowed(PARTNER, "manage_subscription", account(B))

    # Ending: the partner lifts the restriction, the admin removes the partner, customer service deletes the card.
    authz.update_billing_settings(B, restrict_subscription_to_payment_manager=False, acting_user=PARTNER)
    assert authz.is_allowed(CLIENT, "view_subscription", account(B))
    removed = authz.remove_member(B, PARTNER, acting_user=CLIENT)
    assert removed["role"] is None and authz.last_revision == removed["revision"]
    assert not authz.is_allowed(PARTNER, "read", account(B))
    assert not authz.is_allowed(PARTNER, "delete", PM_CARD)
    assert authz.members(B, acting_user=CLIENT)["members"] == [{"user": CLIENT, "role": "admin"}]
    authz.add_support_agent(SUPPORT)
    assert authz.authorize_batch([
        (SUPPORT, "delete", PM_CARD), (SUPPORT, "view", SUBSCRIPTION), (SUPPORT, "view_workspace", account(B)),
    ]) == [True, True, False]
    authz.remove_support_agent(SUPPORT)
    assert not authz.is_allowed(SUPPORT, "delete", PM_CARD)

    log = authz.changes(account=B)["changes"]
    assert [entry["kind"] for entry in log] == [
        "account.create", "member.invite", "billing_settings.update", "billing_settings.update", "member.remove",
    ]
    assert [entry["acting_user"] for entry in log] == [None, CLIENT, PARTNER, PARTNER, CLIENT]
    later = authz.changes(after=base + 5)["changes"]
    assert [entry["kind"] for entry in later] == ["support_agent.add", "support_agent.remove"]


def test_list_pages_and_batches_return_everything_in_order(authz):
    for number in range(25):
        authz.create_account(f"acc_{number:02}", f"Client {number}", f"u_client_{number}")
        authz.invite(f"acc_{number:02}", PARTNER, "payment_manager")
    managed = authz.list(PARTNER, "manage_subscription", page_size=10)
    assert managed == [f"acc_{number:02}" for number in range(25)]
    assert authz.list(PARTNER, "view_workspace") == []
    assert authz.list("u_client_7", "read", page_size=1) == ["acc_07"]

    checks = [(PARTNER if n % 2 else "u_client_0", "manage_subscription", account(f"acc_{n % 25:02}")) for n in range(2500)]
    answers = authz.authorize_batch(checks)
    assert len(answers) == 2500
    assert answers == [bool(n % 2) or n % 25 == 0 for n in range(2500)]


def test_errors_map_to_their_classes(authz, server, database_url):
    authz.create_account(B, "Entreprise B", CLIENT)
    authz.invite(B, "u_reader", "reader", acting_user=CLIENT)

    with pytest.raises(Forbidden) as forbidden:
        authz.invite(B, "u_friend", "collaborator", acting_user="u_reader")
    assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
    with pytest.raises(NotFound) as not_found:
        authz.get_account("acc_nope")
    assert (not_found.value.status, not_found.value.code) == (404, "account_not_found")
    with pytest.raises(NotFound):
        authz.remove_support_agent("u_never_was")
    with pytest.raises(BadRequest) as bad_request:
        authz.authorize(CLIENT, "fly", account(B))
    assert (bad_request.value.status, bad_request.value.code) == (400, "unknown_action")
    assert authz.is_allowed(CLIENT, "fly", account(B)) is False
    with pytest.raises(Conflict) as conflict:
        authz.update_billing_settings(B, restrict_subscription_to_payment_manager=True)
    assert conflict.value.code == "no_payment_manager"
    with pytest.raises(Conflict) as second_invitation:
        authz.invite(B, "u_reader", "collaborator")
    assert second_invitation.value.code == "already_member"

    with AuthzClient(server, "not-a-key", timeout=REAL_SERVER_TIMEOUT) as stranger:
        with pytest.raises(Unauthorized) as unauthorized:
            stranger.authorize(CLIENT, "read", account(B))
        assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthenticated")
        assert stranger.is_allowed(CLIENT, "read", account(B)) is False

    _, check_only_key = create_key(Database(database_url), "web front end", ["check"])
    with AuthzClient(server, check_only_key, timeout=REAL_SERVER_TIMEOUT) as front_end:
        assert front_end.is_allowed(CLIENT, "read", account(B))
        with pytest.raises(Forbidden) as missing_scope:
            front_end.invite(B, "u_friend", "reader", acting_user=CLIENT)
        assert missing_scope.value.code == "missing_scope"

    # Ids are quoted: every character the id grammar allows reaches the service as part of the id.
    odd = "acc.b@x+1:2=3_-"
    authz.create_account(odd, "Odd", "u+1@example.com")
    assert authz.get_account(odd, acting_user="u+1@example.com")["id"] == odd
    assert authz.members(odd, acting_user="u+1@example.com")["members"] == [{"user": "u+1@example.com", "role": "admin"}]
    with pytest.raises(BadRequest):  # and what it does not allow is refused, never mangled
        authz.create_account("acc é ?#&1", "Odd", "u_x")


def test_read_your_writes_on_four_workers(database_url):
    with running_server(database_url, workers=4) as base:
        writer = AuthzClient(base, TEST_KEY, timeout=REAL_SERVER_TIMEOUT)
        reader = AuthzClient(base, TEST_KEY, timeout=REAL_SERVER_TIMEOUT)
        writer.create_account(B, "Entreprise B", CLIENT)
        collaborator = "u_collaborator"
        stale: list[str] = []
        for round_number in range(100):
            for expected in (True, False):
                if expected:
                    writer.invite(B, collaborator, "collaborator", acting_user=CLIENT)
                else:
                    writer.remove_member(B, collaborator, acting_user=CLIENT)
                reader.last_revision = writer.last_revision
                for who, client in (("writer", writer), ("reader", reader)):
                    decision = client.authorize(collaborator, "edit_workspace", account(B))
                    if decision.allowed is not expected or decision.revision < writer.last_revision:
                        stale.append(f"round {round_number}, {who}: {decision} after revision {writer.last_revision}")
        writer.close()
        reader.close()
    assert stale == []


# -- against a fake service: retries and failing closed ---------------------------


@dataclass
class Reply:
    """What the fake service does with one request."""

    status: int = 200
    body: dict | bytes = b"{}"
    delay: float = 0.0
    hang_up: bool = False  # read the request, then close the connection without answering


ALLOWED = Reply(200, {"allowed": True, "revision": 7, "policy": "sha"})
BUSY = Reply(503, {"error": {"code": "unavailable", "message": "the database cannot be reached"}})


class FakeService:
    """An HTTP server on 127.0.0.1 that records every request and answers what `reply(request_number, body)` says."""

    def __init__(self, reply: Callable[[int, dict], Reply]) -> None:
        self.reply = reply
        self.requests: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else {}
                with fake.lock:
                    fake.requests.append((self.command, self.path, body))
                    number = len(fake.requests)
                reply = fake.reply(number, body)
                time.sleep(reply.delay)
                if reply.hang_up:
                    self.close_connection = True
                    return
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_one

            def log_message(self, *args: object) -> None:
                pass

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # a client that gave up waiting leaves a broken pipe behind: expected here

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def attempts(self) -> int:
        return len(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeService]]:
    """Start fake services; each is stopped at the end of the test."""
    started: list[FakeService] = []

    def start(reply: Callable[[int, dict], Reply]) -> FakeService:
        started.append(FakeService(reply))
        return started[-1]

    yield start
    for service in started:
        service.stop()


def client_of(url: str, **options: float) -> AuthzClient:
    return AuthzClient(url, "key", **{"timeout": 1.0, "retries": 3, "backoff": 0.01, **options})


def retry_delays(caplog) -> list[float]:
    return [float(re.search(r"in ([0-9.]+)s$", r.getMessage()).group(1)) for r in caplog.records if "retry" in r.getMessage()]


def test_a_busy_service_is_retried_with_backoff_until_it_answers(fake, caplog):
    caplog.set_level(logging.INFO, logger="service.client")
    service = fake(lambda number, body: BUSY if number <= 2 else ALLOWED)
    decision = client_of(service.url, backoff=0.02).authorize("u_1", "read", account("acc_1"))
    assert decision == Decision(allowed=True, revision=7, policy="sha")
    assert service.attempts == 3
    first, second = retry_delays(caplog)
    assert 0.01 <= first <= 0.03 and 0.02 <= second <= 0.06  # backoff * 2**attempt * uniform(0.5, 1.5)
    assert service.requests[0][2]["actor"] == {"type": "User", "id": "u_1"}

    written = fake(lambda number, body: BUSY if number == 1 else Reply(201, {"user": "u_2", "revision": 9}))
    client = client_of(written.url)
    assert client.invite("acc_1", "u_2", "reader")["revision"] == 9
    assert written.attempts == 2  # a 503 says nothing was written: a change is sent again
    assert client.last_revision == 9


def test_a_service_that_stays_busy_fails_closed_after_every_retry(fake):
    service = fake(lambda number, body: BUSY)
    client = client_of(service.url, retries=3)
    with pytest.raises(Unavailable) as unavailable:
        client.authorize("u_1", "read", account("acc_1"))
    assert service.attempts == 4
    assert (unavailable.value.status, unavailable.value.code) == (503, "unavailable")
    assert client.is_allowed("u_1", "read", account("acc_1")) is False
    assert service.attempts == 8
    assert client.authorize_batch([]) == [] and service.attempts == 8


def test_nothing_listening_fails_closed(caplog):
    caplog.set_level(logging.INFO, logger="service.client")
    client = client_of(f"http://127.0.0.1:{free_port()}", retries=2)
    with pytest.raises(Unavailable) as unavailable:
        client.authorize("u_1", "read", account("acc_1"))
    assert unavailable.value.status is None and unavailable.value.code == "connection_failed"
    assert client.is_allowed("u_1", "read", account("acc_1")) is False
    caplog.clear()
    # The request never reached anyone, so even a change is tried again.
    with pytest.raises(Unavailable):
        client.invite("acc_1", "u_2", "reader")
    assert len(retry_delays(caplog)) == 2


@pytest.mark.parametrize(
    "answer",
    [
        Reply(200, b"<html>all good</html>"),
        Reply(200, b"true"),
        Reply(200, {"allowed": "yes", "revision": 1, "policy": "sha"}),
        Reply(200, {"allowed": 1, "revision": 1, "policy": "sha"}),
        Reply(200, {"allowed": True}),
        Reply(200, {"allowed": True, "revision": True, "policy": "sha"}),
        Reply(404, b"<html>not found</html>"),
        Reply(500, {"error": {"code": "internal_error", "message": "oops"}}),
    ],
    ids=["html", "json-true", "allowed-yes", "allowed-1", "no-revision", "revision-true", "html-404", "500"],
)
def test_an_answer_that_is_not_the_contract_is_never_an_allow(fake, answer):
    service = fake(lambda number, body: answer)
    client = client_of(service.url)
    with pytest.raises(Unavailable):
        client.authorize("u_1", "read", account("acc_1"))
    assert client.is_allowed("u_1", "read", account("acc_1")) is False
    assert service.attempts == 2  # not retried: the service did answer


def test_refusals_are_not_retried(fake):
    conflict = {"error": {"code": "already_member", "message": "u_2 is already reader"}}
    service = fake(lambda number, body: Reply(409, conflict) if body.get("user") else Reply(400, {
        "error": {"code": "unknown_action", "message": "unknown action 'fly'"}
    }))
    client = client_of(service.url)
    with pytest.raises(Conflict) as refused:
        client.invite("acc_1", "u_2", "reader")
    assert refused.value.message == "u_2 is already reader" and service.attempts == 1
    with pytest.raises(BadRequest):
        client.authorize("u_1", "fly", account("acc_1"))
    assert service.attempts == 2


def test_a_change_whose_answer_is_lost_is_not_sent_again(fake):
    slow = fake(lambda number, body: Reply(201, {"revision": 1}, delay=1.0))
    client = client_of(slow.url, timeout=0.2, retries=3)
    with pytest.raises(Unavailable) as unknown:
        client.invite("acc_1", "u_2", "reader")
    assert unknown.value.code == "outcome_unknown" and "may or may not have been made" in unknown.value.message
    assert slow.attempts == 1
    assert client.last_revision == 0

    hung_up = fake(lambda number, body: Reply(hang_up=True))
    client = client_of(hung_up.url, retries=3)
    with pytest.raises(Unavailable) as unknown:
        client.remove_member("acc_1", "u_2", acting_user="u_1")
    assert unknown.value.code == "outcome_unknown" and hung_up.attempts == 1
    # A decision, which changes nothing, is asked again.
    assert client.is_allowed("u_1", "read", account("acc_1")) is False
    assert hung_up.attempts == 1 + 4


def test_a_decision_that_times_out_is_asked_again(fake):
    slow = fake(lambda number, body: ALLOWED if number == 3 else Reply(delay=0.5))
    client = client_of(slow.url, timeout=0.15, retries=3)
    assert client.is_allowed("u_1", "read", account("acc_1")) is True
    assert slow.attempts == 3


def test_decisions_carry_the_latest_revision_this_client_saw(fake):
    def reply(number: int, body: dict) -> Reply:
        if "checks" in body:
            return Reply(200, {"results": [{"allowed": True}] * len(body["checks"]), "revision": 7, "policy": "sha"})
        if "role" in body:
            return Reply(201, {"account": "acc_1", "user": "u_2", "role": "reader", "revision": 7})
        return ALLOWED

    service = fake(reply)
    client = client_of(service.url)
    client.authorize("u_1", "read", account("acc_1"))
    assert "at_least_revision" not in service.requests[-1][2]
    client.authorize("u_1", "read", account("acc_1"), at_least_revision=3)
    assert service.requests[-1][2]["at_least_revision"] == 3
    client.invite("acc_1", "u_2", "reader")
    client.authorize("u_1", "read", account("acc_1"), at_least_revision=3)
    assert service.requests[-1][2]["at_least_revision"] == 7
    client.authorize("u_1", "read", account("acc_1"), at_least_revision=9)
    assert service.requests[-1][2]["at_least_revision"] == 9

    before = service.attempts
    assert client.authorize_batch([("u_1", "read", account(f"acc_{n}")) for n in range(2001)]) == [True] * 2001
    chunks = [body for _, path, body in service.requests[before:]]
    assert [len(chunk["checks"]) for chunk in chunks] == [1000, 1000, 1]
    assert [chunk["at_least_revision"] for chunk in chunks] == [7, 7, 7]
    assert chunks[2]["checks"][0] == {
        "actor": {"type": "User", "id": "u_1"}, "action": "read", "resource": account("acc_2000"),
    }


def test_paths_and_query_strings_are_quoted(fake):
    service = fake(lambda number, body: Reply(200, {"revision": 1}))
    client = client_of(service.url)
    client.remove_member("acc 1/x", "u?#2", acting_user="u é&3")
    client.changes(account="acc 1", after=4, limit=10)
    assert [(method, path) for method, path, _ in service.requests] == [
        ("DELETE", "/v1/accounts/acc%201%2Fx/members/u%3F%232?acting_user=u%20%C3%A9%263"),
        ("GET", "/v1/changes?after=4&limit=10&account=acc%201"),
    ]
