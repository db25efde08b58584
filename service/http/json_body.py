"""The one place a JSON request body is read: what it must be before any schema looks at it (SPEC "Strict input").

Every declared endpoint's body goes through `parse` (`declare.py`), and the quick
path of the decision bodies (`quick_bodies.py`) only ever sees what `parse` answered,
so no two parts of the service can read one body two ways. A body must be
`Content-Type: application/json` (415 otherwise), valid UTF-8, at most
`MAX_DEPTH` levels deep, without a duplicate key at any level, a lone surrogate
(even written as an escape, `"\\ud800"`) or a non-finite number (`NaN`,
`Infinity`, `1e999`): 400 each. These are the places where two JSON parsers
disagree (the last duplicate key wins in Python, the first in others; a lone
surrogate cannot be stored or encoded; `NaN` is not JSON): refusing them means
the body the service decides on is the body every other reader sees.

The depth is measured on the bytes before parsing, without recursion, so a
million `[` cost a few passes in C, never a RecursionError.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from service.http.errors import ApiError

MAX_BODY_BYTES = 1_000_000
MAX_DEPTH = 32
MEDIA_TYPE = "application/json"


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message)


# What the depth is counted on: every byte but brackets and quotes is deleted.
_ALL_BUT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_TOO_MANY_OPEN = b"[" * (MAX_DEPTH + 1)  # opened one after the other: too deep, whatever follows
# An escape of a UTF-16 surrogate (paired ones become one character; a lone one stays a surrogate).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a `Content-Type` header says JSON: `application/json`, with parameters such as
    `charset=utf-8` allowed (a charset other than UTF-8 is not: the body would be read as another text)."""
    if content_type == MEDIA_TYPE:  # what nearly every caller sends
        return True
    if not content_type:
        return False
    media_type, *parameters = content_type.split(";")
    if media_type.strip().lower() != MEDIA_TYPE:
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def parse(raw: bytes, content_type: str | None) -> Any:
    """The body as JSON (`{}` for an empty one), or `ApiError` saying what is wrong with it."""
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw:
        return {}
    if not is_json_media_type(content_type):
        raise ApiError(
            415, "unsupported_media_type",
            f"send the body as Content-Type: {MEDIA_TYPE} (got {(content_type or 'none')[:100]!r})",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid(f"the body is not valid JSON: not UTF-8 at byte {error.start}") from None
    if not text.strip(" \t\r\n"):  # JSON's whitespace only: a body of other spaces is not JSON
        return {}
    _refuse_too_deep(raw)
    try:
        body = _DECODER.decode(text)
    except ApiError:
        raise
    except (ValueError, RecursionError) as error:  # RecursionError: cannot happen below MAX_DEPTH; never a 500
        raise _invalid(f"the body is not valid JSON: {error}") from None
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(body)
    return body


def _refuse_too_deep(raw: bytes) -> None:
    """400 if arrays and objects nest more than MAX_DEPTH levels, counted on the bytes, without recursion.

    The body (valid UTF-8: no byte of a multi-byte character is ASCII) is reduced to its brackets:
    escaped backslashes and quotes out, every byte but brackets and quotes out, then what is between
    quotes. Each pass then removes every empty pair `[]`, the innermost level: a bracket left after
    MAX_DEPTH passes is deeper than that, or never closed. Every step is one pass in C, so a
    megabyte of `[` costs a few milliseconds.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:  # the common case: too few brackets to be too deep
        return
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")  # an escaped quote does not end a string
    # Two quotes side by side can go (an empty string, or one string's end and the next one's start): the
    # common case, ids and words without brackets, leaves no quote, and nothing to split.
    structure = raw.translate(None, _ALL_BUT_STRUCTURE).replace(b'""', b"")
    if b'"' in structure:
        structure = b"".join(structure.split(b'"')[::2])
    remaining = structure.replace(b"{", b"[").replace(b"}", b"]")
    for _level in range(MAX_DEPTH):
        if b"[" not in remaining:
            return
        if _TOO_MANY_OPEN in remaining:
            break
        remaining = remaining.replace(b"[]", b"")
    if b"[" in remaining:
        raise _invalid(f"the body is not valid JSON: nested more than {MAX_DEPTH} levels deep, or a bracket is not closed")


def _object(pairs: list[tuple[str, Any]]) -> dict:
    body = dict(pairs)
    if len(body) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _value in pairs if key in seen or seen.add(key))
        raise _invalid(f"the body is not valid JSON: the key {duplicate[:100]!r} is given more than once in one object")
    return body


def _non_finite(constant: str) -> float:
    raise _invalid(f"the body is not valid JSON: {constant} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _invalid(f"the body is not valid JSON: {text[:40]} is too large a number")
    return value


# One decoder, made once (`json.loads` with hooks would make a new one, and its scanner, for every body).
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_non_finite, parse_float=_finite_float)


def _refuse_lone_surrogates(body: Any) -> None:
    """400 if any key or string holds half a UTF-16 surrogate pair (walked with a stack: no recursion)."""
    pending = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            strings = (value,)
        elif isinstance(value, dict):
            strings = value.keys()
            pending.extend(value.values())
        elif isinstance(value, list):
            strings = ()
            pending.extend(value)
        else:
            continue
        for string in strings:
            if _SURROGATE.search(string):
                raise _invalid("the body is not valid JSON: it holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff)")
