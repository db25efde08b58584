"""The Python client of the authorization service, for the product's other back-end services.

    from service.client import AuthzClient

    authz = AuthzClient("http://127.0.0.1:8000", api_key)
    authz.invite("acc_b", "u_partner", "payment_manager", acting_user="u_client")
    if authz.is_allowed("u_partner", "manage_subscription", {"type": "Account", "id": "acc_b"}):
        ...  # show the subscription page

- Fail closed: `is_allowed` answers False on any error, and logs it; never True.
- Read your writes: every decision carries `at_least_revision`, the highest
  revision this client's fact calls answered, so it is never decided on facts
  older than a change made through this client (on any worker).
- Retries, bounded, with exponential backoff and jitter: decisions and reads
  on 503, connection errors and timeouts; writes on 503 and on connections
  that failed before the request was sent. Never on 4xx.
- Errors are `AuthzError` subclasses, one per status of the HTTP contract;
  `Unavailable` also covers a missing, malformed or unexpected answer.

Build one client per process and share it between threads: it holds the
connection pool, and `last_revision` is updated under a lock.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError  # requests' own transport

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # the service's limit on checks per batch request
Check = tuple[str, str, dict]


@dataclass(frozen=True)
class Decision:
    """The service's answer to one authorize request."""

    allowed: bool
    revision: int  # the revision of the facts the decision reflects (at least)
    policy: str  # sha256 of the policy that decided
    explanation: dict | None = None


class AuthzError(Exception):
    """The service refused the request, or gave no usable answer.

    `status` is the HTTP status of the answer (None when no answer arrived),
    `code` and `message` come from the service's `{"error": {...}}` body.
    """

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{status or 'no answer'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class BadRequest(AuthzError):
    """400: the request is not valid (unknown action, missing attribute, ...)."""


class Unauthorized(AuthzError):
    """401: no API key, or one the service does not accept."""


class Forbidden(AuthzError):
    """403: the key lacks the scope, or the acting user lacks the permission."""


class NotFound(AuthzError):
    """404: no such account, member or support agent."""


class Conflict(AuthzError):
    """409: the change would break an invariant; nothing was changed."""


class Unavailable(AuthzError):
    """503, no answer (connection error, timeout), or an answer this client cannot read."""


_ERRORS_BY_STATUS: dict[int, type[AuthzError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 503: Unavailable,
}


class AuthzClient:
    """Calls the v1 HTTP contract of the authorization service.

    `retries` extra attempts are made after a retryable failure, waiting
    `backoff * 2**attempt * random.uniform(0.5, 1.5)` seconds before each.
    `timeout` bounds connecting and each wait for the answer, per attempt.
    Without `session`, the client builds one with a pool of `pool_size`
    connections; a session passed in is used as it is configured.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 2.0,
        retries: int = 3,
        backoff: float = 0.05,
        pool_size: int = 10,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
        self._revision_lock = threading.Lock()
        self._last_revision = 0

    @property
    def last_revision(self) -> int:
        """The highest revision a fact call through this client answered; decisions ask for at least it."""
        return self._last_revision

    @last_revision.setter
    def last_revision(self, revision: int) -> None:
        """Raise it, e.g. to the revision another client wrote; it never goes down."""
        self._note_revision(revision)

    def close(self) -> None:
        """Close the pooled connections (only those of a session this client built)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> AuthzClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- decisions (scope `check`) ------------------------------------------

    def authorize(
        self, actor_id: str, action: str, resource: dict, *, explain: bool = False, at_least_revision: int | None = None
    ) -> Decision:
        """May `actor_id` do `action` on `resource`? Raises an `AuthzError` when the service cannot say."""
        body: dict[str, Any] = {"actor": _user(actor_id), "action": action, "resource": resource}
        if explain:
            body["explain"] = True
        answer = self._decide("/v1/authorize", body, self._consistency_floor(at_least_revision))
        explanation = answer.get("explanation")
        return Decision(
            allowed=_expect(answer.get("allowed"), bool, "allowed"),
            revision=_expect(answer.get("revision"), int, "revision"),
            policy=_expect(answer.get("policy"), str, "policy"),
            explanation=_expect(explanation, dict, "explanation") if explain else None,
        )

    def is_allowed(self, actor_id: str, action: str, resource: dict, *, at_least_revision: int | None = None) -> bool:
        """True only when the service answered that it is allowed; False on a denial and on any error."""
        try:
            return self.authorize(actor_id, action, resource, at_least_revision=at_least_revision).allowed
        except AuthzError as error:
            log.warning("authz: denying %s %s on %s: %s", actor_id, action, resource, error)
        except Exception:  # fail closed on anything, even a bug in this client
            log.exception("authz: denying %s %s on %s after an unexpected error", actor_id, action, resource)
        return False

    def authorize_batch(self, checks: list[Check], *, at_least_revision: int | None = None) -> list[bool]:
        """One answer per `(actor_id, action, resource)`, in order; sent in requests of at most 1,000 checks.

        Every request carries the same `at_least_revision`, so no answer is
        older than what this client wrote before the call.
        """
        floor = self._consistency_floor(at_least_revision)
        allowed: list[bool] = []
        for start in range(0, len(checks), MAX_BATCH):
            chunk = checks[start:start + MAX_BATCH]
            body = {"checks": [{"actor": _user(actor), "action": action, "resource": resource}
                               for actor, action, resource in chunk]}
            results = _expect(self._decide("/v1/authorize/batch", body, floor).get("results"), list, "results")
            if len(results) != len(chunk):
                raise Unavailable(200, "unexpected_answer", f"{len(results)} results for {len(chunk)} checks")
            allowed.extend(_expect(_expect(result, dict, "result").get("allowed"), bool, "allowed") for result in results)
        return allowed

    def actions(self, actor_id: str, resource: dict, *, at_least_revision: int | None = None) -> list[str]:
        """Every action `actor_id` may do on `resource`, sorted."""
        body = {"actor": _user(actor_id), "resource": resource}
        answer = self._decide("/v1/actions", body, self._consistency_floor(at_least_revision))
        return _expect_strings(answer.get("actions"), "actions")

    def list(
        self,
        actor_id: str,
        action: str,
        resource_type: str = "Account",
        *,
        page_size: int = 1000,
        at_least_revision: int | None = None,
    ) -> list[str]:
        """The ids of every resource on which `actor_id` may do `action`, sorted, all pages fetched.

        Pages follow the sorted ids, so a change between two pages shows in
        the later pages only; every page is at least as fresh as this client's
        writes.
        """
        floor = self._consistency_floor(at_least_revision)
        ids: list[str] = []
        token: str | None = None
        while True:
            body: dict[str, Any] = {
                "actor": _user(actor_id), "action": action, "resource_type": resource_type, "page_size": page_size,
            }
            if token is not None:
                body["page_token"] = token
            answer = self._decide("/v1/list", body, floor)
            ids.extend(_expect_strings(answer.get("ids"), "ids"))
            next_token = answer.get("next_page_token")
            if next_token is None:
                return ids
            if _expect(next_token, str, "next_page_token") == token:
                raise Unavailable(200, "unexpected_answer", "the service answered the same page token twice")
            token = next_token

    # -- facts (scope `write`) ------------------------------------------------

    def create_account(self, id: str, name: str, admin: str) -> dict[str, Any]:
        """Sign-up: the account with default billing settings and `admin` as its first admin."""
        return self._fact("POST", "/v1/accounts", body={"id": id, "name": name, "admin": admin})

    def get_account(self, id: str, acting_user: str | None = None) -> dict[str, Any]:
        """The account, its billing settings and members (`acting_user` must be allowed to `read` it)."""
        return self._fact("GET", _path("accounts", id), query=_acting(acting_user))

    def billing_settings(self, account_id: str, acting_user: str | None = None) -> dict[str, Any]:
        """The two billing settings and `warnings` (`acting_user` must be allowed to `view_subscription`)."""
        return self._fact("GET", _path("accounts", account_id, "billing-settings"), query=_acting(acting_user))

    def update_billing_settings(
        self,
        account_id: str,
        *,
        restrict_subscription_to_payment_manager: bool | None = None,
        auto_add_subscription_invoices_to_purchases: bool | None = None,
        acting_user: str | None = None,
    ) -> dict[str, Any]:
        """Change the settings given (the others are left as they are)."""
        body: dict[str, Any] = _acting(acting_user)
        if restrict_subscription_to_payment_manager is not None:
            body["restrict_subscription_to_payment_manager"] = restrict_subscription_to_payment_manager
        if auto_add_subscription_invoices_to_purchases is not None:
            body["auto_add_subscription_invoices_to_purchases"] = auto_add_subscription_invoices_to_purchases
        return self._fact("PATCH", _path("accounts", account_id, "billing-settings"), body=body)

    def members(self, account_id: str, acting_user: str | None = None) -> dict[str, Any]:
        """The account's members and their roles (`acting_user` must be allowed to `view_members`)."""
        return self._fact("GET", _path("accounts", account_id, "members"), query=_acting(acting_user))

    def invite(self, account_id: str, user: str, role: str, acting_user: str | None = None) -> dict[str, Any]:
        """Make `user` a member of the account with `role`."""
        body = {"user": user, "role": role, **_acting(acting_user)}
        return self._fact("POST", _path("accounts", account_id, "members"), body=body)

    def change_role(self, account_id: str, user: str, role: str, acting_user: str | None = None) -> dict[str, Any]:
        """Give a member another role."""
        body = {"role": role, **_acting(acting_user)}
        return self._fact("PATCH", _path("accounts", account_id, "members", user), body=body)

    def remove_member(self, account_id: str, user: str, acting_user: str | None = None) -> dict[str, Any]:
        """Remove a member from the account."""
        return self._fact("DELETE", _path("accounts", account_id, "members", user), query=_acting(acting_user))

    def add_support_agent(self, user: str) -> dict[str, Any]:
        """Give `user` the global support role (customer service); idempotent."""
        return self._fact("PUT", _path("support-agents", user))

    def remove_support_agent(self, user: str) -> dict[str, Any]:
        """Take the support role back from `user`."""
        return self._fact("DELETE", _path("support-agents", user))

    def changes(self, account: str | None = None, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        """Change-log entries after revision `after`, oldest first; pass `next_after` back for more (scope `write` or `audit`)."""
        query: dict[str, Any] = {"after": after, "limit": limit}
        if account is not None:
            query["account"] = account
        return self._fact("GET", "/v1/changes", query=query)

    # -- plumbing -------------------------------------------------------------

    def _consistency_floor(self, at_least_revision: int | None) -> int:
        return max(self._last_revision, at_least_revision or 0)

    def _note_revision(self, revision: int) -> None:
        with self._revision_lock:
            self._last_revision = max(self._last_revision, revision)

    def _decide(self, path: str, body: dict[str, Any], floor: int) -> dict[str, Any]:
        """A decision request, answered from facts reflecting at least revision `floor` (when above 0)."""
        if floor > 0:
            body["at_least_revision"] = floor
        return self._request("POST", path, body, None, safe_to_repeat=True)

    def _fact(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, query: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A fact call: a GET may be repeated, a change only when the service cannot have seen it."""
        if method != "GET" and body is None:
            body = {}
        answer = self._request(method, path, body, query, safe_to_repeat=method == "GET")
        self._note_revision(_expect(answer.get("revision"), int, "revision"))
        return answer

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, query: dict[str, Any] | None, *, safe_to_repeat: bool
    ) -> dict[str, Any]:
        """Send one call, retrying what may be retried; the decoded JSON object, or an `AuthzError`."""
        url = self.base_url + path + ("?" + urlencode(query, quote_via=quote) if query else "")
        for attempt in range(self.retries + 1):
            try:
                response = self.session.request(method, url, json=body, headers=self._headers, timeout=self.timeout)
            except requests.RequestException as error:
                failure, retryable = _transport_failure(method, path, error, safe_to_repeat)
            else:
                if response.status_code != 503:
                    return _decode(response)
                failure, retryable = _error_of(response), True  # the service wrote and decided nothing
            if not retryable or attempt == self.retries:
                raise failure
            delay = self.backoff * 2**attempt * random.uniform(0.5, 1.5)
            log.info("authz: %s %s failed (%s); retry %d of %d in %.3fs",
                     method, path, failure, attempt + 1, self.retries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises


def _transport_failure(
    method: str, path: str, error: requests.RequestException, safe_to_repeat: bool
) -> tuple[Unavailable, bool]:
    """What a request that got no answer means, and whether sending it again is safe.

    A change whose request may have reached the service is not sent again: the
    service may have applied it and only its answer was lost, and repeating
    it blindly could apply it twice or fail confusingly (a second invitation
    is a 409, a second removal a 404). Only a failure to connect at all
    proves the service never saw it. Decisions and reads can always be repeated.
    """
    # requests wraps a failure to connect as a MaxRetryError whose reason is a
    # ConnectTimeoutError (NewConnectionError, e.g. refused, is one); a
    # connection lost after sending ("Connection aborted.") is a ProtocolError.
    cause = error.args[0] if error.args else None
    never_sent = isinstance(error, requests.ConnectTimeout) or (
        isinstance(error, requests.ConnectionError) and isinstance(getattr(cause, "reason", None), ConnectTimeoutError)
    )
    if never_sent:
        return Unavailable(None, "connection_failed", f"cannot connect to the service: {error}"), True
    if isinstance(error, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError):
        if safe_to_repeat:
            return Unavailable(None, "no_answer", f"no answer from the service: {error}"), True
        return Unavailable(
            None,
            "outcome_unknown",
            f"{method} {path} got no answer ({type(error).__name__}): the change may or may not have been made; "
            "it was not sent again — read the facts before repeating it",
        ), False
    return Unavailable(None, "request_failed", f"the request could not be made: {error}"), False


def _decode(response: requests.Response) -> dict[str, Any]:
    """A success's JSON object, or the `AuthzError` the answer means."""
    if 200 <= response.status_code < 300:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise Unavailable(response.status_code, "unexpected_answer", f"not a JSON object: {response.text[:200]!r}")
        return answer
    raise _error_of(response)


def _error_of(response: requests.Response) -> AuthzError:
    """The service's `{"error": {"code", "message"}}` as its exception; anything else is `Unavailable`."""
    try:
        detail = response.json().get("error")
        code, message = detail["code"], detail["message"]
    except (ValueError, AttributeError, TypeError, KeyError):
        code, message = None, None
    if not isinstance(code, str) or not isinstance(message, str):
        return Unavailable(
            response.status_code, "unexpected_answer", f"HTTP {response.status_code}: {response.text[:200]!r}"
        )
    error_class = _ERRORS_BY_STATUS.get(response.status_code)
    if error_class is None:
        error_class = AuthzError if 400 <= response.status_code < 500 else Unavailable
    return error_class(response.status_code, code, message)


def _expect(value: Any, kind: type, name: str) -> Any:
    """`value` if it is a `kind` (a JSON boolean is not an integer); else the answer is unusable."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise Unavailable(200, "unexpected_answer", f"{name} is not a {kind.__name__}: {value!r:.100}")
    return value


def _expect_strings(value: Any, name: str) -> list[str]:
    return [_expect(item, str, name) for item in _expect(value, list, name)]


def _user(actor_id: str) -> dict[str, str]:
    return {"type": "User", "id": actor_id}


def _acting(acting_user: str | None) -> dict[str, Any]:
    return {"acting_user": acting_user} if acting_user is not None else {}


def _path(*segments: str) -> str:
    """`/v1/` and the segments, each quoted whole (a `/` or `?` in an id stays inside its segment)."""
    return "/v1/" + "/".join(quote(segment, safe="") for segment in segments)
