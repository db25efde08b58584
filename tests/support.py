"""Test helpers: one small API client over either the Flask test client or a real HTTP server."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TEST_KEY = "test-preshared-key"
Transport = Callable[[str, str, Any, dict], tuple[int, bytes]]


@dataclass
class Answer:
    status: int
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def error_code(self) -> str | None:
        body = self.json
        return body.get("error", {}).get("code") if isinstance(body, dict) else None

    def __repr__(self) -> str:
        return f"<{self.status} {self.raw[:300]!r}>"


def user(user_id: str) -> dict:
    return {"type": "User", "id": user_id}


def account(account_id: str) -> dict:
    return {"type": "Account", "id": account_id}


class Api:
    """Calls the v1 contract the way a calling service does."""

    def __init__(self, transport: Transport, key: str | None = TEST_KEY) -> None:
        self.transport = transport
        self.key = key
        # Like the client library: decisions carry the latest revision this caller wrote.
        self.last_revision = 0

    def with_key(self, key: str | None) -> Api:
        return Api(self.transport, key)

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, headers: dict | None = None) -> Answer:
        headers = dict(headers or {})
        if self.key is not None:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if payload is not None:
            headers.setdefault("Content-Type", "application/json")
        status, content = self.transport(method, path, payload, headers)
        answer = Answer(status, content)
        if method != "GET" and status in (200, 201) and path.startswith(("/v1/accounts", "/v1/support-agents")):
            self.last_revision = max(self.last_revision, answer.json["revision"])
        return answer

    def get(self, path: str, **kw: Any) -> Answer:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return self.call("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return self.call("PATCH", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return self.call("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Answer:
        return self.call("DELETE", path, **kw)

    # -- shortcuts used by many tests --------------------------------------

    def allowed(self, actor: str, action: str, resource: dict, **extra: Any) -> bool:
        extra.setdefault("at_least_revision", self.last_revision)
        answer = self.post("/v1/authorize", {"actor": user(actor), "action": action, "resource": resource, **extra})
        assert answer.status == 200, answer
        return answer.json["allowed"]

    def create_account(self, account_id: str, admin: str, name: str | None = None) -> Answer:
        answer = self.post("/v1/accounts", {"id": account_id, "name": name or account_id, "admin": admin})
        assert answer.status == 201, answer
        return answer

    def invite(self, account_id: str, member: str, role: str, acting_user: str | None = None) -> Answer:
        body = {"user": member, "role": role}
        if acting_user:
            body["acting_user"] = acting_user
        return self.post(f"/v1/accounts/{account_id}/members", body)

    def settings(self, account_id: str, acting_user: str | None = None, **values: bool) -> Answer:
        body: dict[str, Any] = dict(values)
        if acting_user:
            body["acting_user"] = acting_user
        return self.patch(f"/v1/accounts/{account_id}/billing-settings", body)

    def revision(self) -> int:
        return self.get("/readyz").json["revision"]


def flask_transport(client) -> Transport:
    def send(method: str, path: str, payload: bytes | None, headers: dict) -> tuple[int, bytes]:
        response = client.open(path, method=method, data=payload, headers=headers)
        return response.status_code, response.get_data()

    return send


def http_transport(base_url: str, session=None) -> Transport:
    import requests

    session = session or requests.Session()

    def send(method: str, path: str, payload: bytes | None, headers: dict) -> tuple[int, bytes]:
        response = session.request(method, base_url + path, data=payload, headers=headers, timeout=30)
        return response.status_code, response.content

    return send
