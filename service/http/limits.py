"""The size of a request's target and headers: refused here, as JSON, before anything reads them.

The server (granian) refuses on its own, with an empty body, only what is far
larger: a target over about 64 KB (414), more than 100 header fields or over
400 KB of headers (431). Everything below reaches the app, which answers
these limits with the one error shape.
"""

from __future__ import annotations

from flask import Flask, request

from service.http.errors import ApiError

MAX_TARGET_BYTES = 8190  # path and query string
MAX_FIELD_BYTES = 8190  # one header field, name and value
MAX_HEADER_BYTES = 32_768  # every header field together


def _field_sizes(environ: dict) -> list[int]:
    sizes = []
    for key, value in environ.items():
        if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key[5:] if key.startswith("HTTP_") else key
            sizes.append(len(name) + 2 + len(str(value).encode("latin-1", "replace")))
    return sizes


def check_sizes(app: Flask) -> None:
    """414 for a target over MAX_TARGET_BYTES; 431 for a field over MAX_FIELD_BYTES or headers over MAX_HEADER_BYTES."""

    @app.before_request
    def _sizes() -> None:
        environ = request.environ
        target = len(environ.get("PATH_INFO", "").encode("latin-1", "replace")) + len(environ.get("QUERY_STRING", "")) + 1
        if target > MAX_TARGET_BYTES:
            raise ApiError(414, "uri_too_long", f"the request target is longer than {MAX_TARGET_BYTES} bytes")
        sizes = _field_sizes(environ)
        if any(size > MAX_FIELD_BYTES for size in sizes):
            raise ApiError(431, "headers_too_large", f"a header field is longer than {MAX_FIELD_BYTES} bytes")
        if sum(sizes) > MAX_HEADER_BYTES:
            raise ApiError(431, "headers_too_large", f"the header fields together are longer than {MAX_HEADER_BYTES} bytes")
