"""Declared endpoints: each states its scope, input schemas, answer schema and errors once.

`endpoint(...)` wraps a view so that it authenticates the caller, loads and
validates the query string and the body, and turns the view's result into
JSON. The same declarations produce the OpenAPI document (`openapi.py`).
Every endpoint has a query schema (by default one that takes no parameter):
an unknown or repeated query parameter is refused, never ignored. A body is read
by `json_body.parse` alone; an endpoint declared without a body refuses one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from marshmallow import Schema

from service.core.inputs import ID_RULE, is_id
from service.http import json_body
from service.http.auth import authenticate
from service.http.errors import ApiError
from service.http.schemas import EmptyQuery


@dataclass
class Endpoint:
    rule: str
    method: str
    summary: str
    scope: str | tuple[str, ...] | None
    body: Schema | None
    query: Schema
    answer: Schema | None
    status: int
    errors: tuple[int, ...]
    tag: str
    description: str = ""
    path_parameters: list[str] = field(default_factory=list)

    @property
    def scopes(self) -> tuple[str, ...] | None:
        """The scopes a caller's key must hold one of; None: any valid key (`"any"`) or none at all."""
        if self.scope in (None, "any"):
            return None
        return self.scope if isinstance(self.scope, tuple) else (self.scope,)


ENDPOINTS: list[Endpoint] = []


def endpoint(
    blueprint: Blueprint,
    rule: str,
    method: str = "GET",
    *,
    summary: str,
    scope: str | tuple[str, ...] | None = None,  # a scope, alternatives, "any" (any valid key), None (no key)
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    answer: type[Schema] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    quick_body: Callable[[Any], dict | None] | None = None,
) -> Callable:
    """Declare and register one endpoint of the HTTP contract on `blueprint`.

    `quick_body`, for the hottest endpoints, loads a plainly valid body faster
    than the schema and answers None for anything else, which the schema then
    loads or refuses (see quick_bodies.py).
    """
    body_schema = body() if body else None
    query_schema = (query or EmptyQuery)()
    declared = Endpoint(
        rule=rule,
        method=method,
        summary=summary,
        scope=scope,
        body=body_schema,
        query=query_schema,
        answer=answer() if answer else None,
        status=status,
        # 400: at least the query string (and a body where none is taken); 413 and 415: a body's size and type.
        errors=tuple(sorted({*errors, 400, *((401, 403, 503) if scope else ()), *((413, 415) if body else ())})),
        tag=blueprint.name,
        path_parameters=[part[1:-1].split(":")[-1] for part in rule.split("/") if part.startswith("<")],
    )
    ENDPOINTS.append(declared)
    scopes = declared.scopes

    def decorator(view: Callable) -> Callable:
        declared.description = (view.__doc__ or "").strip()

        @wraps(view)
        def handle(**path_arguments: Any) -> Response:
            environ = request.environ  # read directly: each use of `request` is a context-variable lookup
            if scope is not None:
                keys = current_app.extensions["authz"].keys
                g.caller = authenticate(keys, environ.get("HTTP_AUTHORIZATION"), scopes)
            for name, value in path_arguments.items():
                _check_path_argument(name, value)
            arguments = dict(path_arguments)
            # An endpoint without query parameters and a request without a query string (the decision
            # endpoints' hot path) cost one test here: the raw query string, parsed by nobody.
            if query is not None or environ.get("QUERY_STRING"):
                loaded_query = query_schema.load(_query_arguments())
                if query is not None:
                    arguments["query"] = loaded_query
            if body_schema is not None:
                raw = _json_body()
                loaded = quick_body(raw) if quick_body is not None else None
                arguments["body"] = loaded if loaded is not None else body_schema.load(raw)
            else:
                _refuse_a_body()
            result = view(**arguments)
            if isinstance(result, Response):
                return result
            return Response(json.dumps(result), status=status, mimetype="application/json")

        blueprint.add_url_rule(rule, endpoint=view.__name__, view_func=handle, methods=[method])
        return handle

    return decorator


def _check_path_argument(name: str, value: str) -> None:
    if not is_id(value):
        raise ApiError(400, "invalid_request", f"{name}: must be {ID_RULE}")


def _query_arguments() -> dict[str, str]:
    """The query string, one value a name: a name given twice is refused rather than reduced to one value."""
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise ApiError(400, "invalid_request", f"{', '.join(repeated)}: given more than once in the query string")
    return request.args.to_dict()


def _json_body() -> Any:
    """The request body, read by the one JSON reader (`json_body.parse`): an empty body is `{}`.

    A declared length over the app's MAX_CONTENT_LENGTH (one byte over MAX_BODY_BYTES) is refused
    by werkzeug as it is read (413, in the error shape); a chunked body is cut off there, and the
    byte over the limit is how `parse` tells an oversized one from a full one (413 too).
    """
    return json_body.parse(request.get_data(cache=False), request.environ.get("CONTENT_TYPE"))


def _refuse_a_body() -> None:
    """400 for a body sent to an endpoint that takes none: it would be ignored, and nothing sent is ignored."""
    environ = request.environ
    if environ.get("CONTENT_LENGTH") in (None, "", "0") and "HTTP_TRANSFER_ENCODING" not in environ:
        return
    if request.get_data(cache=False):
        raise ApiError(400, "unexpected_body", f"{request.method} {request.path} takes no body; send none")
