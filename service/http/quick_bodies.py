"""A quick path for the bodies of the decision endpoints, which every page of the product calls.

marshmallow stays the one definition of what a body may be (it validates every
other endpoint, explains every error and produces the OpenAPI document), but
loading a nested schema costs about 40 µs a check, which on `/v1/authorize`
and `/v1/authorize/batch` is most of the work. These functions accept only
bodies that are plainly valid, in the exact shape marshmallow would load
them, and answer None for anything else, which marshmallow then loads (or
refuses, naming the field). A property test checks that whatever they accept,
marshmallow accepts too, with the same result. Both read what `json_body.parse` read
(duplicate keys, lone surrogates, non-finite numbers and deep nesting already refused).
"""

from __future__ import annotations

import re
from typing import Any

from policies.world import RESOURCE_TYPES
from service.core.inputs import MAX_REVISION, is_id, with_consistency
from service.http.schemas import MAX_BATCH

_ACTION = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_RESOURCE_KEYS = {name: frozenset(("type", *kind.attributes)) for name, kind in RESOURCE_TYPES.items()}
_CHECK_KEYS = frozenset(("actor", "action", "resource"))
_AUTHORIZE_KEYS = frozenset(("actor", "action", "resource", "explain", "at_least_revision", "as_of_revision"))
_BATCH_KEYS = frozenset(("checks", "at_least_revision"))
_ACTOR_KEYS = frozenset(("type", "id"))


def _is_id(value: Any) -> bool:
    return is_id(value)


def _revision(body: dict, name: str) -> bool:
    """Absent, or a JSON integer from 0 to MAX_REVISION (not a boolean)."""
    value = body.get(name)
    return value is None and name not in body or type(value) is int and 0 <= value <= MAX_REVISION


def _check(check: Any, allowed_keys: frozenset) -> bool:
    if type(check) is not dict or not _CHECK_KEYS <= check.keys() <= allowed_keys:
        return False
    actor, action, resource = check["actor"], check["action"], check["resource"]
    if type(actor) is not dict or actor.keys() != _ACTOR_KEYS or actor["type"] != "User" or not _is_id(actor["id"]):
        return False
    if type(action) is not str or _ACTION.fullmatch(action) is None or type(resource) is not dict:
        return False
    resource_type = resource.get("type")
    keys = _RESOURCE_KEYS.get(resource_type) if type(resource_type) is str else None
    if keys is None or resource.keys() != keys:
        return False
    return all(_is_id(value) for name, value in resource.items() if name != "type")


def authorize_body(body: Any) -> dict | None:
    """The loaded body of `POST /v1/authorize`, or None to let the schema decide."""
    if type(body) is not dict or not _check(body, _AUTHORIZE_KEYS):
        return None
    explain = body.get("explain", False)
    if type(explain) is not bool or not _revision(body, "at_least_revision") or not _revision(body, "as_of_revision"):
        return None
    if "at_least_revision" in body and "as_of_revision" in body:
        return None
    loaded = dict(body)
    loaded["explain"] = explain
    return with_consistency(loaded)


def batch_body(body: Any) -> dict | None:
    """The loaded body of `POST /v1/authorize/batch`, or None to let the schema decide."""
    if type(body) is not dict or "checks" not in body or not body.keys() <= _BATCH_KEYS:
        return None
    checks = body["checks"]
    if type(checks) is not list or len(checks) > MAX_BATCH or not _revision(body, "at_least_revision"):
        return None
    if not all(_check(check, _CHECK_KEYS) for check in checks):
        return None
    return with_consistency(dict(body)) if "at_least_revision" in body else body
