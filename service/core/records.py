"""Can the record be trusted? The change log's head, anchors noted outside the database, and verification.

`authz changes head` prints the latest entry's revision and hash; an operator notes
it elsewhere and later passes it back (`verify --expect REVISION:SHA256`): a log
rewritten whole since, every hash recomputed, no longer holds that entry.
"""

from __future__ import annotations

import re

from models.verification import Head

_ANCHOR = re.compile(r"^([0-9]{1,19}):([0-9a-f]{64})$")


def parse_anchor(text: str) -> Head:
    """`REVISION:SHA256` (as `authz changes head` prints it, with a colon) as a Head; ValueError otherwise."""
    match = _ANCHOR.match(text.strip().replace(" ", ":", 1))
    if not match or int(match.group(1)) > 2**63 - 1:
        raise ValueError(f"--expect takes REVISION:SHA256 (a revision and 64 lowercase hex digits), not {text!r}")
    return Head(int(match.group(1)), match.group(2))
