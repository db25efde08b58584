"""The change-log page (`/audit/changes`): filters by account, user, kind and time, pages both ways, CSV export.

Each page reads one page of entries through an index (whatever the log's length) and
verifies only the tail since the last verification (`Records.status`), so it answers
in well under a second at millions of entries.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from flask import Response, request, url_for
from marshmallow import Schema, ValidationError, fields, validate

from models.queries import ChangeFilter, change_page
from service.audit.words import SENTENCES, in_words
from service.core.audit_queries import Moment
from service.core.errors import InvalidRequest
from service.core.inputs import MAX_REVISION, PRINTABLE, Id, QueryInteger, describe_validation_error

PAGE = 200
CSV_LIMIT = 10_000
FILTERS = ("account", "user", "kind", "since", "until")
# The kinds offered in the form; any other is accepted as typed (a bulk import writes `import`).
KINDS = sorted({*SENTENCES, "import"})
CSV_COLUMNS = ("revision", "at", "kind", "account", "user", "acting_user", "api_key", "before", "after", "hash")


class ChangesQuery(Schema):
    account = Id()
    user = Id(metadata={"description": "the user a change is about, or who asked for it"})
    kind = fields.String(validate=[validate.Length(1, 40), PRINTABLE])
    since = Moment(metadata={"description": "ISO 8601 (a date alone is its midnight, UTC), inclusive"})
    until = Moment(metadata={"description": "ISO 8601, exclusive"})
    after = QueryInteger(load_default=0, validate=validate.Range(min=0, max=MAX_REVISION))
    before = QueryInteger(validate=validate.Range(min=1, max=MAX_REVISION))
    limit = QueryInteger(load_default=PAGE, validate=validate.Range(min=1, max=CSV_LIMIT))
    format = fields.String(load_default="html", validate=validate.OneOf(("html", "csv")))


def log_time(moment: datetime) -> str:
    """A time as the change log writes it, so that comparing the strings compares the times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


PARAMETERS = tuple(ChangesQuery().fields)


def read_query() -> dict[str, Any]:
    """The page's query string (its parameters already checked), validated; a 400 page names the bad field."""
    values = {name: value for name, value in request.args.items() if value != ""}
    try:
        query = ChangesQuery().load(values)
    except ValidationError as error:
        raise InvalidRequest(describe_validation_error(error), "invalid_request") from None
    if "since" in query and "until" in query and query["since"] >= query["until"]:
        raise InvalidRequest("until: must be later than since", "invalid_request")
    if "before" in query and query["after"]:
        raise InvalidRequest("after, before: give one of them (a page is read forwards or backwards)", "invalid_request")
    return query


def where(query: dict[str, Any]) -> ChangeFilter:
    return ChangeFilter(
        account=query.get("account"), user=query.get("user"), kind=query.get("kind"),
        since=log_time(query["since"]) if "since" in query else None,
        until=log_time(query["until"]) if "until" in query else None,
    )


def page_context(db, query: dict[str, Any], head_revision: int) -> dict[str, Any]:
    """What changes.html shows: the entries in words, the filters as typed, the links to every other page."""
    page = change_page(db, where(query), after=query["after"], before=query.get("before"), limit=query["limit"])
    typed = {name: request.args.get(name, "") for name in FILTERS}
    kept = {name: value for name, value in typed.items() if value}
    if query["limit"] != PAGE:
        kept["limit"] = query["limit"]
    entries = page.entries
    here = {"before": query["before"]} if "before" in query else {"after": query["after"] or None}
    return {
        "entries": [in_words(entry) for entry in entries],
        "filters": typed,
        "kinds": KINDS,
        "filtered": bool(kept.keys() - {"limit"}),
        "after": query["after"],
        "csv_url": url_for("audit.changes", **kept, **here, format="csv"),
        "first_url": url_for("audit.changes", **kept) if page.more_before else None,
        "previous_url": url_for("audit.changes", **kept, before=entries[0]["revision"]) if page.more_before else None,
        "next_url": url_for("audit.changes", **kept, after=entries[-1]["revision"]) if page.more_after else None,
        "last_url": url_for("audit.changes", **kept, before=head_revision + 1) if page.more_after else None,
        "clear_url": url_for("audit.changes"),
    }


def as_csv(db, query: dict[str, Any]) -> Response:
    """The entries the page shows (up to `limit`, at most 10,000), one row each, with a header row."""
    page = change_page(db, where(query), after=query["after"], before=query.get("before"), limit=query["limit"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry in page.entries:
        row = {**entry, "before": json.dumps(entry["before"], sort_keys=True), "after": json.dumps(entry["after"], sort_keys=True)}
        writer.writerow([_cell(row[column]) for column in CSV_COLUMNS])
    return Response(
        out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": 'attachment; filename="changes.csv"'}
    )


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
