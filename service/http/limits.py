"""The size of a request's target and headers: refused here, as JSON, before anything reads them.

The server (granian) refuses on its own, with an empty body, only what is far
larger: a target over about 64 KB (414), more than 100 header fields or over
400 KB of headers (431). Everything below reaches the app, which answers
these limits with the one error shape.
"""

from __future__ import annotations

from service.http.errors import ApiError

MAX_TARGET_BYTES = 8190  # path and query string
MAX_FIELD_BYTES = 8190  # one header field, name and value
MAX_HEADER_BYTES = 32_768  # every header field together


def refuse_oversized(environ: dict) -> None:
    """414 for a target over MAX_TARGET_BYTES; 431 for a field over MAX_FIELD_BYTES or headers over MAX_HEADER_BYTES.

    A WSGI environ holds the bytes of the request line and headers as latin-1 strings, one
    character a byte: their lengths are the sizes in bytes. A field counts its name, `: `
    and its value.
    """
    if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) + 1 > MAX_TARGET_BYTES:
        raise ApiError(414, "uri_too_long", f"the request target is longer than {MAX_TARGET_BYTES} bytes")
    sizes = [
        len(key) - 3 + len(value) if key[:5] == "HTTP_" else len(key) + 2 + len(value)
        for key, value in environ.items()
        if key[:5] == "HTTP_" or key == "CONTENT_TYPE" or key == "CONTENT_LENGTH"
    ]
    if max(sizes, default=0) > MAX_FIELD_BYTES:
        raise ApiError(431, "headers_too_large", f"a header field is longer than {MAX_FIELD_BYTES} bytes")
    if sum(sizes) > MAX_HEADER_BYTES:
        raise ApiError(431, "headers_too_large", f"the header fields together are longer than {MAX_HEADER_BYTES} bytes")
