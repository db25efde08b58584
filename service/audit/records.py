"""The auditor's pages on what was decided and who holds what: `/audit/decisions` and `/audit/access-review`.

Same sign-in, headers and error pages as every auditor page (`routes.py`); each page has
a CSV export of exactly what it shows (`?format=csv`).
"""

from __future__ import annotations

from flask import Blueprint, Response, request, url_for
from marshmallow import ValidationError

from service.audit.errors import register_error_pages
from service.audit.routes import _authenticate, _page, _runtime, _secure, refuse_unknown_or_repeated
from service.core import access_review as review
from service.core.audit_queries import AccessReviewQuery, DecisionsQuery
from service.core.decision_log import as_csv
from service.core.errors import InvalidRequest
from service.core.inputs import describe_validation_error

records = Blueprint("audit_records", __name__, url_prefix="/audit", template_folder="templates")
records.before_request(_authenticate)
records.after_request(_secure)
register_error_pages(records)

FILTERS = ("actor", "account", "action", "allowed", "since", "until")
_FORMATS = ("html", "csv")


def _arguments(names: tuple[str, ...]) -> tuple[dict[str, str], str]:
    """The filters as typed (empty fields count as absent), and the format asked for; unknown or repeated: 400."""
    refuse_unknown_or_repeated(request.args, {*names, "format"})
    values = {name: value for name, value in request.args.items() if value != ""}
    output = values.pop("format", "html")
    if output not in _FORMATS:
        raise InvalidRequest("format: must be html or csv", "invalid_request")
    return values, output


def _csv(text: str, filename: str) -> Response:
    return Response(
        text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@records.get("/decisions")
def decisions():
    """The decision log with filters, oldest first, a page at a time; `?format=csv` exports the page."""
    typed, output = _arguments((*FILTERS, "after", "limit"))
    try:
        query = DecisionsQuery().load(typed)
    except ValidationError as error:
        raise InvalidRequest(describe_validation_error(error), "invalid_request") from None
    page = _runtime().decision_log.page(**query)
    if output == "csv":
        return _csv(as_csv(page["decisions"]), "decisions.csv")
    kept = {name: typed[name] for name in (*FILTERS, "limit") if name in typed}
    return _page(
        "decisions.html",
        active="decisions",
        filters={name: typed.get(name, "") for name in FILTERS},
        decisions=page["decisions"],
        after=query["after"],
        csv_url=url_for("audit_records.decisions", **kept, after=query["after"] or None, format="csv"),
        first_url=url_for("audit_records.decisions", **kept) if query["after"] else None,
        next_url=url_for("audit_records.decisions", **kept, after=page["next_after"]) if page["next_after"] else None,
    )


@records.get("/access-review")
def access_review():
    """A form (an account or a user); submitted, who holds what there, from the policy's answers; CSV too."""
    typed, output = _arguments(("account", "user"))
    if not typed:
        return _page("access_review.html", active="access-review", asked={}, review=None)
    try:
        query = AccessReviewQuery().load(typed)
    except ValidationError as error:
        raise InvalidRequest(describe_validation_error(error), "invalid_request") from None
    runtime = _runtime()
    if "account" in query:
        answer = review.review_account(runtime.db, runtime.policy(), query["account"])
        to_csv, name = review.account_csv, f"access-review-{query['account']}.csv"
    else:
        answer = review.review_user(runtime.db, runtime.policy(), query["user"])
        to_csv, name = review.user_csv, f"access-review-{query['user']}.csv"
    if output == "csv":
        return _csv(to_csv(answer), name)
    asked = {name: query[name] for name in ("account", "user") if name in query}
    return _page(
        "access_review.html", active="access-review", asked=asked, review=answer,
        csv_url=url_for("audit_records.access_review", **asked, format="csv"),
    )
