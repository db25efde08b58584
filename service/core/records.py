"""Can the record be trusted? The change log's head, anchors, signed checkpoints and verification.

- `authz changes head` prints the latest entry's revision and hash; an operator notes
  it elsewhere and passes it back later (`verify --expect REVISION:SHA256`): a log
  rewritten whole since, every hash recomputed, no longer holds that entry.
- With `AUTHZ_CHECKPOINT_KEY`, the service notes the head at least every 1,000 changes
  (every multiple of 1,000) or 5 minutes, signed with HMAC-SHA256 over revision and
  hash; a complete verification given the key checks every one, so a rewrite by
  someone without the key is found.
- A complete verification (the CLI's, or `verify_and_checkpoint`) walks the whole
  chain and compares the fact tables; it is recorded. Pages and the HTTP endpoint
  then check only the tail written since the last good verification, at most
  `TAIL_LIMIT` entries per request, and carry on from there at the next request:
  an auditor's page never walks the whole log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from dataclasses import dataclass, replace

from models.changelog import now
from models.checkpoints import (
    EVERY,
    VerificationRecord,
    all_checkpoints,
    latest_checkpoint,
    latest_verifications,
    record_verification,
    write_checkpoints,
)
from models.database import Database
from models.verification import (
    Head,
    Verification,
    anchor_problem,
    facts_at_most,
    read_head,
    snapshot,
    verify,
    verify_chain,
)

logger = logging.getLogger("authz.records")
_ANCHOR = re.compile(r"^([0-9]{1,19}):([0-9a-f]{64})$")
CHECKPOINT_SECONDS = 300
TAIL_LIMIT = 20_000  # entries a page checks at most: well under a second


def parse_anchor(text: str) -> Head:
    """`REVISION:SHA256` (or `REVISION SHA256`, as `authz changes head` prints it) as a Head; ValueError otherwise."""
    match = _ANCHOR.match(text.strip().replace(" ", ":", 1))
    if not match or int(match.group(1)) > 2**63 - 1:
        raise ValueError(f"--expect takes REVISION:SHA256 (a revision and 64 lowercase hex digits), not {text!r}")
    return Head(int(match.group(1)), match.group(2))


@dataclass(frozen=True)
class RecordStatus:
    """What an auditor is told: the verification as it stands, the head, and how far it was checked.

    `verification.ok` false: altered records were found (`first_bad_revision`, or drift).
    `unchecked`: entries past `verification.revision` not verified yet (a long tail, checked over several pages).
    `compared_at`: when the fact tables were last compared with the log (a complete verification), or None.
    """

    verification: Verification
    head: Head
    unchecked: int
    compared_at: str | None
    compared_revision: int | None

    @property
    def ok(self) -> bool:
        return self.verification.ok

    def altered_at_or_before(self, revision: int) -> bool:
        """Whether an answer as of `revision` rests on entries found altered."""
        bad = self.verification.first_bad_revision
        return not self.verification.ok and bad is not None and bad <= revision


class Records:
    """The change log's anchors and verifications, for one process."""

    def __init__(self, db: Database, key: str | None = None) -> None:
        self.db = db
        self.key = key.encode() if key else None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._last_checkpoint = 0.0

    # -- anchors ----------------------------------------------------------------

    def head(self) -> Head:
        return read_head(self.db)

    def sign(self, revision: int, sha256: str) -> str | None:
        """HMAC-SHA256 over `REVISION:SHA256` with the checkpoint key; None without a key."""
        if self.key is None:
            return None
        return hmac.new(self.key, f"{revision}:{sha256}".encode(), hashlib.sha256).hexdigest()

    def _sign_verification(self, complete: bool, ok: bool, revision: int, sha256: str) -> str | None:
        return self.sign(revision, f"{sha256}:verified:{int(complete)}:{int(ok)}")

    def note_written(self, revision: int) -> None:
        """After a commit: a checkpoint at every multiple of 1,000, and one within 5 minutes of any change."""
        if self.key is None:
            return
        if revision % EVERY == 0 or time.monotonic() - self._last_checkpoint >= CHECKPOINT_SECONDS:
            try:
                self.checkpoint(head_too=True)
            except Exception:  # noqa: BLE001 — the change is committed; the timer or the next write tries again
                logger.warning("could not write a checkpoint of the change log", exc_info=True)
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(CHECKPOINT_SECONDS, self._on_timer)
                self._timer.daemon = True
                self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.checkpoint(head_too=True)
        except Exception:  # noqa: BLE001 — a lost database: the next write or timer tries again
            logger.warning("could not write a checkpoint of the change log", exc_info=True)

    def checkpoint(self, *, head_too: bool) -> int:
        """Write the checkpoints due now (see `models.checkpoints.write_checkpoints`); answers how many."""
        written = write_checkpoints(self.db, self.sign, head_too=head_too)
        self._last_checkpoint = time.monotonic()
        return written

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    # -- verification -------------------------------------------------------------

    def verify(self, *, expect: Head | None = None) -> Verification:
        """The whole chain, the fact tables against it, the signed checkpoints (with the key), `expect`; recorded."""
        with snapshot(self.db) as connection:
            result = verify(connection, expect=expect)
            if result.ok and self.key is not None:
                result = self._check_checkpoints(connection, result)
        self._record(result, complete=True)
        return result

    verify_and_checkpoint = verify

    def _check_checkpoints(self, connection, result: Verification) -> Verification:
        signed = 0
        previous = None
        for checkpoint in all_checkpoints(connection):
            if checkpoint.revision > result.head.revision:
                problem = (
                    f"a signed checkpoint holds revision {checkpoint.revision}, past the log's end "
                    f"({result.head.revision}): the last entries were cut"
                )
                return replace(result, ok=False, first_bad_revision=result.head.revision + 1, problem=problem)
            if checkpoint.signature is None:
                continue  # written while the service had no key: no anchor
            if not hmac.compare_digest(checkpoint.signature, self.sign(checkpoint.revision, checkpoint.hash)):
                problem = f"the checkpoint at revision {checkpoint.revision} is not signed with the checkpoint key: forged"
                return replace(result, ok=False, first_bad_revision=checkpoint.revision, problem=problem)
            if previous is not None and checkpoint.revision // EVERY > previous // EVERY + 1:
                missing = (previous // EVERY + 1) * EVERY
                problem = f"the signed checkpoint at revision {missing} was deleted"
                return replace(result, ok=False, first_bad_revision=missing, problem=problem)
            moved = anchor_problem(connection, Head(checkpoint.revision, checkpoint.hash), "signed checkpoint's")
            if moved is not None:
                return replace(result, ok=False, first_bad_revision=checkpoint.revision, problem=moved)
            previous = checkpoint.revision
            signed += 1
        return result

    def status(self) -> RecordStatus:
        """The log as far as verified, in bounded work: what every auditor page and GET /v1/changes/verify show.

        A log of at most TAIL_LIMIT entries over tables of at most TAIL_LIMIT rows each is
        verified whole, fact tables included (a bulk-loaded store with a short log is not).
        A longer one: the last good verification plus the tail since, at most
        TAIL_LIMIT entries (the next request carries on); the fact tables as the last
        complete verification (`authz changes verify`) compared them. A problem found
        is recorded, so every page says so until a complete verification passes again.
        """
        with snapshot(self.db) as connection:
            latest, good, complete = latest_verifications(connection, self._genuine)
            head = _head(connection)
            if head.revision <= TAIL_LIMIT and facts_at_most(connection, TAIL_LIMIT):
                result = verify(connection)
                if result.ok and self.key is not None:
                    result = self._check_checkpoints(connection, result)
            else:
                result = None
                start = Head(good.revision, good.hash) if good is not None else Head(0, "0" * 64)
                tail = verify_chain(connection, start, limit=TAIL_LIMIT)
        if result is not None:  # verified whole, now
            if not _same(complete, result):
                self._record(result, complete=True)
            return RecordStatus(result, head, 0, now(), head.revision)
        if latest is not None and latest.complete and not latest.ok and (good is None or latest.id > good.id):
            # A complete verification found a problem and none has passed since (a repair is verified by the CLI).
            return RecordStatus(_as_verification(latest, head), head, 0, latest.at, latest.revision)
        if tail.ok:
            tail = replace(tail, entries=(good.entries if good is not None else 0) + tail.entries)
            if tail.revision > start.revision:
                self._record(tail, complete=False)
        elif latest is None or latest.ok or latest.first_bad_revision != tail.first_bad_revision:
            self._record(tail, complete=False)
        verification = replace(tail, head=head) if tail.ok else tail
        if tail.ok and complete is not None and complete.drift_count:
            verification = replace(
                verification, ok=False, problem=complete.problem, drift=complete.drift, drift_count=complete.drift_count
            )
        unchecked = head.revision - tail.revision if tail.ok else 0
        return RecordStatus(
            verification, head, unchecked, complete.at if complete else None, complete.revision if complete else None
        )

    def _genuine(self, record: VerificationRecord) -> bool:
        """With a key, only verifications it signed count: one slipped into the table by hand is ignored."""
        if self.key is None:
            return True
        expected = self._sign_verification(record.complete, record.ok, record.revision, record.hash)
        return record.signature is not None and hmac.compare_digest(record.signature, expected)

    def _record(self, result: Verification, *, complete: bool) -> None:
        last = result.head if result.ok else Head(result.revision, result.head.sha256)
        record_verification(
            self.db, complete=complete, ok=result.ok, checked_from=result.checked_from, revision=last.revision,
            hash=last.sha256, entries=result.entries, first_bad_revision=result.first_bad_revision,
            problem=result.problem, drift_count=result.drift_count, drift=result.drift,
            signature=self._sign_verification(complete, result.ok, last.revision, last.sha256),
        )

    def latest_checkpoint(self):
        with self.db.engine.connect() as connection:
            return latest_checkpoint(connection)


def _head(connection) -> Head:
    from models.verification import head

    return head(connection)


def _same(record: VerificationRecord | None, result: Verification) -> bool:
    """Whether `record` already says what `result` says (nothing new to record)."""
    return record is not None and (record.revision, record.hash, record.ok, record.first_bad_revision,
                                   record.drift_count) == (result.head.revision, result.head.sha256, result.ok,
                                                           result.first_bad_revision, result.drift_count)


def _as_verification(record: VerificationRecord, head: Head) -> Verification:
    return Verification(
        record.ok, record.entries, record.revision, record.first_bad_revision, record.problem, record.drift,
        record.drift_count, head, record.checked_from,
    )
