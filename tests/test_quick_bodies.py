"""The quick path for decision bodies never accepts what marshmallow would refuse, nor loads it differently."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from policies.world import RESOURCE_TYPES
from service.http import schemas
from service.http.quick_bodies import authorize_body, batch_body

ids = st.one_of(
    st.sampled_from(["u_1", "acc_1", "pm 7", "ünïcode", "x" * 200]),
    st.text(max_size=210),
    st.sampled_from(["", "a/b", "u_1\n", "a\x00", "x" * 201, "\x7f"]),
)
anything = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), ids, st.just([]), st.just({}))
revisions = st.one_of(st.integers(-3, 10**12), st.integers(2**63 - 3, 2**63 + 3), anything)


@st.composite
def resources(draw):
    resource_type = draw(st.one_of(st.sampled_from(list(RESOURCE_TYPES)), anything))
    known = isinstance(resource_type, str) and resource_type in RESOURCE_TYPES
    attributes = RESOURCE_TYPES[resource_type].attributes if known else ("id",)
    resource = {"type": resource_type}
    for name in attributes:
        if draw(st.integers(0, 9)):
            resource[name] = draw(ids)
    if not draw(st.integers(0, 9)):
        resource[draw(st.sampled_from(["id", "account", "owner", "user", "color"]))] = draw(anything)
    return draw(st.one_of(st.just(resource), anything)) if not draw(st.integers(0, 15)) else resource


@st.composite
def checks(draw, extra_keys=()):
    check = {}
    if draw(st.integers(0, 15)):
        actor = {"type": draw(st.one_of(st.just("User"), anything)), "id": draw(ids)}
        if not draw(st.integers(0, 9)):
            actor.pop(draw(st.sampled_from(["type", "id"])))
        check["actor"] = draw(st.one_of(st.just(actor), anything)) if not draw(st.integers(0, 15)) else actor
    if draw(st.integers(0, 15)):
        check["action"] = draw(st.one_of(st.sampled_from(["read", "view", "delete", "manage", "fly"]), ids, anything))
    if draw(st.integers(0, 15)):
        check["resource"] = draw(resources())
    for key in extra_keys:
        if draw(st.booleans()):
            check[key] = draw(revisions if "revision" in key else st.one_of(st.booleans(), anything))
    if not draw(st.integers(0, 15)):
        check["unexpected"] = 1
    return check


def _same_as_schema(schema, quick, body) -> None:
    loaded = quick(body)
    if loaded is None:
        return
    try:
        expected = schema.load(body)
    except ValidationError as error:
        raise AssertionError(f"the quick path accepted a body the schema refuses: {body!r} ({error.messages})") from None
    assert loaded == expected


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(checks(extra_keys=("explain", "at_least_revision", "as_of_revision")))
def test_authorize_bodies(body):
    _same_as_schema(schemas.AuthorizeRequest(), authorize_body, body)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(checks(), max_size=4), st.one_of(st.none(), revisions), st.booleans())
def test_batch_bodies(check_list, revision, extra):
    body = {"checks": check_list}
    if revision is not None:
        body["at_least_revision"] = revision
    if extra:
        body["explain"] = True
    _same_as_schema(schemas.BatchRequest(), batch_body, body)


def test_the_quick_path_takes_the_usual_bodies():
    card = {"type": "PaymentMethod", "id": "pm_7", "account": "acc_1", "owner": "u_42"}
    check = {"actor": {"type": "User", "id": "u_42"}, "action": "delete", "resource": card}
    assert authorize_body(check) == {**check, "explain": False}
    assert authorize_body({**check, "explain": True, "at_least_revision": 12}) is not None
    assert batch_body({"checks": [check] * 1000, "at_least_revision": 3}) is not None
    assert batch_body({"checks": [check] * 1001}) is None
    assert authorize_body({**check, "at_least_revision": True}) is None
    assert authorize_body({**check, "as_of_revision": 1, "at_least_revision": 1}) is None
