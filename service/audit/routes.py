"""The auditor pages: read-only HTML for people who never read Python, behind an `audit` key.

A browser signs in with its own login prompt: `Authorization: Basic` with the
API key as the password (any user name); `Authorization: Bearer <key>` works
too. Every page reads the database as it is served, so an unreachable
database gives a 503 page, never a page of possibly stale data. These pages
are not part of the JSON API and are not in `/openapi.json`.
"""

from __future__ import annotations

import base64
import binascii

from flask import Blueprint, Response, current_app, g, request
from markupsafe import Markup
from marshmallow import Schema, ValidationError, validate

from models.errors import NotFound, RevisionAhead
from models.facts import read_revision
from models.history import policy_versions
from models.queries import account_exists, accounts_page
from policies.matrix import NOBODY, SETTINGS, settings_label, to_html_tables
from service.audit import change_log
from service.audit.errors import register_error_pages, render_page
from service.audit.explain_form import NEEDS, ExplainForm, decide
from service.core.api_keys import AUDIT_SCOPE
from service.core.errors import InvalidRequest, Unauthenticated
from service.core.inputs import MAX_REVISION, Id, QueryInteger, describe_validation_error

audit = Blueprint("audit", __name__, url_prefix="/audit", template_folder="templates")
register_error_pages(audit)

ACCOUNTS_PAGE = 500
# Inline styles only; no script, no frame, forms post back here only.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _runtime():
    return current_app.extensions["authz"]


def presented_key(header: str | None) -> str:
    """The API key of `Basic base64(anything:KEY)` (a browser's login prompt) or of `Bearer KEY`."""
    if header and header.startswith("Basic "):
        try:
            decoded = base64.b64decode(header[len("Basic "):].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        _user, separator, key = decoded.partition(":")
        if separator and key:
            return key
    elif header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    raise Unauthenticated("sign in with an API key that has the audit scope")


@audit.before_request
def _authenticate() -> None:
    runtime = _runtime()
    runtime.cache.sync()  # follow the log (the policy in force comes from it); an unreadable database is a 503
    caller = runtime.keys.authenticate(presented_key(request.headers.get("Authorization")))
    runtime.keys.require(caller, (AUDIT_SCOPE,))
    g.caller = caller
    g.revision = read_revision(runtime.db)  # every page reads the database as it is served
    g.head = runtime.records.head()  # the change log's latest entry, on every page: an auditor can note it


@audit.after_request
def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _page(template: str, status: int = 200, **context) -> tuple[str, int]:
    return render_page(template, status, policy=_runtime().policy(), **context)


def _query(fields: dict) -> dict:
    """The query string, validated (empty values count as absent); a 400 page names the bad field.

    As strict as the JSON API's: a parameter the page does not take, or one given twice, is refused.
    """
    refuse_unknown_or_repeated(request.args, fields)
    values = {name: value for name, value in request.args.items() if value != ""}
    try:
        return Schema.from_dict(fields)().load(values)
    except ValidationError as error:
        raise InvalidRequest(describe_validation_error(error), "invalid_request") from None


def refuse_unknown_or_repeated(args, names) -> None:
    """400 for a query parameter the page does not take, or one given twice: refused, never ignored."""
    unknown = sorted(name for name in args if name not in names)
    if unknown:
        raise InvalidRequest(f"{', '.join(unknown)[:200]}: not a parameter of this page", "invalid_request")
    repeated = sorted(name for name, values in args.lists() if len(values) > 1)
    if repeated:
        raise InvalidRequest(f"{', '.join(repeated)}: given more than once in the query string", "invalid_request")


# -- pages --------------------------------------------------------------------


@audit.get("/")
def overview():
    """The policy in force, the revision, whether the change log is intact, and the accounts."""
    runtime = _runtime()
    after = _query({"accounts_after": Id()}).get("accounts_after", "")
    records = runtime.records.status()
    accounts = accounts_page(runtime.db, after=after, limit=ACCOUNTS_PAGE + 1)
    more = len(accounts) > ACCOUNTS_PAGE
    accounts = accounts[:ACCOUNTS_PAGE]
    recorded = runtime.keeper.recorded()
    return _page(
        "overview.html",
        active="overview",
        records=records,
        verification=records.verification,
        accounts=accounts,
        next_accounts=accounts[-1][0] if more else None,
        in_force_since=recorded[0] if recorded else None,
    )


@audit.get("/policy")
def policy_page():
    """The policy text, line by line (each line `#L<n>`); with `?as_of_revision=N`, the one in force then."""
    runtime = _runtime()
    as_of = _query({"as_of_revision": QueryInteger(validate=validate.Range(min=0, max=MAX_REVISION))}).get("as_of_revision")
    if as_of is not None and as_of > g.revision:
        raise RevisionAhead(f"as_of_revision {as_of} is ahead of the latest revision, {g.revision}")
    recorded = runtime.keeper.recorded(as_of if as_of is not None else g.revision)
    current = runtime.policy()
    sha256, text = (recorded[1], recorded[2]) if recorded else (current.sha256, current.text)
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        kind = "blank" if not stripped else "comment" if stripped.startswith("#") else "rule"
        lines.append((number, line, kind))
    sections = [
        (number, line.split()[1]) for number, line, _kind in lines if line.startswith(("resource ", "actor "))
    ]
    return _page(
        "policy.html",
        active="policy",
        sha256=sha256,
        lines=lines,
        sections=sections,
        as_of=as_of,
        in_force_since=recorded[0] if recorded else None,
        versions=policy_versions(runtime.db),
    )


_matrices: dict[str, Markup] = {}


@audit.get("/matrix")
def matrix():
    """Who is granted each action, for each combination of an account's two billing settings."""
    _query({})
    policy = _runtime().policy()
    if policy.sha256 not in _matrices:
        _matrices[policy.sha256] = Markup(to_html_tables(policy))  # safe: every value in it is html.escape-d
    labels = [settings_label(*settings) for settings in SETTINGS]
    return _page("matrix.html", active="matrix", tables=_matrices[policy.sha256], labels=labels, nobody=NOBODY)


@audit.get("/changes")
def changes():
    """The change log, oldest first, in business words: filters, pages both ways, `?format=csv` (see change_log.py)."""
    runtime = _runtime()
    refuse_unknown_or_repeated(request.args, change_log.PARAMETERS)
    query = change_log.read_query()
    account = query.get("account")
    if account is not None and not account_exists(runtime.db, account):
        raise NotFound(f"there is no account {account}", "account_not_found")
    if query["format"] == "csv":
        return change_log.as_csv(runtime.db, query)
    records = runtime.records.status()
    return _page(
        "changes.html",
        active="changes",
        account=account,
        records=records,
        verification=records.verification,
        **change_log.page_context(runtime.db, query, records.head.revision),
    )


@audit.get("/explain")
def explain():
    """A form; submitted (a GET with its fields), the decision and why, in business words."""
    refuse_unknown_or_repeated(request.args, ExplainForm.names())
    form = ExplainForm.from_args(request.args)
    if not form.submitted:
        return _explain_page(form)
    try:
        decision = decide(_runtime().authorizer, form)
    except ValidationError as error:
        return _explain_page(form, error=form.describe(error), status=400)
    except (InvalidRequest, RevisionAhead) as error:  # an unknown action, a revision ahead of the log
        return _explain_page(form, error=error.message, status=400)
    return _explain_page(form, decision=decision)


def _explain_page(form: ExplainForm, status: int = 200, **context):
    actions = sorted({action for names in _runtime().policy().actions.values() for action in names})
    return _page(
        "explain.html", status, active="explain", form=form, resource_types=list(NEEDS), needs=NEEDS,
        actions=actions, **context,
    )
