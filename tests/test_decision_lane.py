"""The decision lane (service/http/decision_lane.py) answers exactly what the Flask route answers.

Every request is sent twice, on the same facts: through the app (the lane first)
and to the Flask app alone (`lane.app`, where the lane hands what it does not
answer). Status, body and headers must be the same, and so must what the
decision log records. Plain decisions must be the lane's (Flask never sees them);
everything else must reach Flask with the body as it was sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder

from policies.world import RESOURCE_TYPES
from service.http.decision_lane import DecisionLane
from tests.support import TEST_KEY, account

ACTORS = ["u_admin", "u_partner", "u_reader", "u_nobody"]
ACCOUNTS = ["acc_b", "acc_c", "acc_missing"]
REQUEST_ID = "lane-test-0001"


@pytest.fixture
def facts(app, api):
    api.create_account("acc_b", "u_admin")
    api.invite("acc_b", "u_partner", "payment_manager")
    api.invite("acc_b", "u_reader", "reader")
    api.create_account("acc_c", "u_partner")
    api.settings("acc_b", restrict_subscription_to_payment_manager=True)
    return app


def _send(wsgi, *, body: bytes | None, headers: dict, query: str = "", method: str = "POST") -> tuple[str, dict, bytes]:
    environ = EnvironBuilder(path="/v1/authorize", method=method, data=body, headers=headers, query_string=query).get_environ()
    answered: dict[str, Any] = {}

    def start_response(status, response_headers, exc_info=None):
        answered["status"], answered["headers"] = status, dict(response_headers)

    content = b"".join(wsgi(environ, start_response))
    return answered["status"], answered["headers"], content


def _both(app, **request: Any) -> tuple[tuple, tuple]:
    lane = app.wsgi_app
    assert isinstance(lane, DecisionLane)
    return _send(lane, **request), _send(lane.app, **request)


def _decisions(app) -> list[dict]:
    """Every decision recorded so far, oldest first, without its id and time."""
    runtime = app.extensions["authz"]
    runtime.decision_log.flush()
    return [
        {name: value for name, value in decision.items() if name not in ("id", "time")}
        for decision in runtime.decision_log.page(limit=1000)["decisions"]
    ]


def _resource(kind: str, account_id: str) -> dict:
    attributes = {name: (account_id if name == "account" else f"{name}_1") for name in RESOURCE_TYPES[kind].attributes}
    if "id" in attributes and kind == "Account":
        attributes["id"] = account_id
    return {"type": kind, **attributes}


extras = st.fixed_dictionaries({}, optional={
    "at_least_revision": st.integers(0, 12),
    "as_of_revision": st.integers(0, 12),
    "explain": st.booleans(),
    "unknown_field": st.just(1),
})
MOSTLY_PLAIN = 4  # of 5 requests: a valid key, JSON, no query string, no extra field


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_lane_answers_what_the_route_answers(facts, data):
    plain = [True] * MOSTLY_PLAIN + [False]
    kind = data.draw(st.sampled_from(sorted(RESOURCE_TYPES)))
    actions = sorted(facts.extensions["authz"].authorizer.policy().actions[kind])
    check = {
        "actor": {"type": "User", "id": data.draw(st.sampled_from(ACTORS))},
        "action": data.draw(st.sampled_from([*actions, "no_such_action"])),
        "resource": _resource(kind, data.draw(st.sampled_from(ACCOUNTS))),
    }
    extra = data.draw(extras) if not data.draw(st.sampled_from(plain)) else {}
    key = TEST_KEY if data.draw(st.sampled_from(plain)) else data.draw(st.sampled_from(["authz_wrong_key", None]))
    content_type = "application/json" if data.draw(st.sampled_from(plain)) else data.draw(st.sampled_from(["text/plain", None]))
    query = "" if data.draw(st.sampled_from(plain)) else "x=1"
    body = json.dumps({**check, **extra}).encode()
    headers = {"X-Request-Id": REQUEST_ID}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if content_type is not None:
        headers["Content-Type"] = content_type
    recorded_before = len(_decisions(facts))
    by_lane, by_route = _both(facts, body=body, headers=headers, query=query)
    status, lane_headers, content = by_lane
    assert (status, content) == (by_route[0], by_route[2]), (body, by_lane, by_route)
    assert lane_headers == by_route[1]
    recorded = _decisions(facts)[recorded_before:]
    if status.startswith("200"):  # one record each, the same
        assert len(recorded) == 2 and recorded[0] == recorded[1], recorded
        assert recorded[0]["request_id"] == REQUEST_ID and recorded[0]["actor"] == check["actor"]["id"]
    else:
        assert recorded == []


def test_a_plain_decision_never_enters_flask_and_everything_else_does(facts):
    entered: list[str] = []
    lane = facts.wsgi_app
    flask_app = lane.app

    def recording(environ, start_response):
        entered.append("flask")
        return flask_app(environ, start_response)

    lane.app = recording
    client = facts.test_client()
    headers = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
    plain = {"actor": {"type": "User", "id": "u_admin"}, "action": "read", "resource": account("acc_b")}

    answer = client.post("/v1/authorize", data=json.dumps(plain), headers=headers)
    assert answer.status_code == 200 and answer.json["allowed"] is True and entered == []
    answer = client.post("/v1/authorize", data=json.dumps({**plain, "at_least_revision": 1}), headers=headers)
    assert answer.status_code == 200 and entered == []

    handed_over = [
        ({**plain, "explain": True}, headers, 200),
        ({**plain, "as_of_revision": 1}, headers, 200),
        ({**plain, "action": "no_such_action"}, headers, 400),
        (plain, {**headers, "Authorization": "Bearer authz_wrong_key"}, 401),
        (plain, {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "text/plain"}, 415),
    ]
    for body, request_headers, status in handed_over:
        entered.clear()
        answer = client.post("/v1/authorize", data=json.dumps(body), headers=request_headers)
        assert answer.status_code == status and entered == ["flask"], (body, answer.json)
    explained = client.post("/v1/authorize", data=json.dumps({**plain, "explain": True}), headers=headers)
    assert explained.json["explanation"]  # the body reached the route whole


def test_a_chunked_body_is_read_by_the_route(facts):
    """No Content-Length: the lane reads nothing and the route reads the body as werkzeug streams it."""
    plain = {"actor": {"type": "User", "id": "u_admin"}, "action": "read", "resource": account("acc_b")}
    environ = EnvironBuilder(
        path="/v1/authorize", method="POST", data=json.dumps(plain),
        headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"},
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input_terminated"] = True
    answered: dict = {}
    content = b"".join(facts.wsgi_app(environ, lambda status, headers, exc=None: answered.update(status=status)))
    assert answered["status"].startswith("200") and json.loads(content)["allowed"] is True
