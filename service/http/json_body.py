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

The depth is measured on the text before parsing, without recursion, so a
million `[` cost one pass of a regular expression, never a RecursionError.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from service.http.errors import ApiError

MAX_BODY_BYTES = 1_000_000
MAX_DEPTH = 32
MEDIA_TYPE = "application/json"


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message)


# A JSON string, whole (the unrolled form: no backtracking, no recursion), and anything that is not a bracket.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# An escape of a UTF-16 surrogate (paired ones become one character; a lone one stays a surrogate).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a `Content-Type` header says JSON: `application/json`, with parameters such as
    `charset=utf-8` allowed (a charset other than UTF-8 is not: the body would be read as another text)."""
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
    if not text.strip():
        return {}
    _refuse_too_deep(text, raw)
    try:
        body = json.loads(text, object_pairs_hook=_object, parse_constant=_non_finite, parse_float=_finite_float)
    except ApiError:
        raise
    except (ValueError, RecursionError) as error:  # RecursionError: cannot happen below MAX_DEPTH; never a 500
        raise _invalid(f"the body is not valid JSON: {error}") from None
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(body)
    return body


def _refuse_too_deep(text: str, raw: bytes) -> None:
    """400 if arrays and objects nest more than MAX_DEPTH levels, counted on the text, without recursion."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:  # the common case: too few brackets to be too deep
        return
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH:
        raise _invalid(f"the body is not valid JSON: nested more than {MAX_DEPTH} levels deep")


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
