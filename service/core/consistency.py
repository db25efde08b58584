"""Which facts a decision is made on: the latest, at least revision N, or as of revision N.

A request says it with `at_least_revision` or `as_of_revision` (never both); the
schemas of the edges build one `Consistency` from them, and the authorizer's one
snapshot helper (`Authorizer.snapshot`) reads the facts it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

Kind = Literal["latest", "at_least", "as_of"]


@dataclass(frozen=True, slots=True)
class Consistency:
    """`latest`: the facts the process holds, fresh as its watcher knows them.
    `at_least`: facts reflecting every change up to `revision` (read your writes, on any worker).
    `as_of`: the facts and the policy as they were at `revision`, rebuilt from the change log.
    """

    kind: Kind = "latest"
    revision: int | None = None

    LATEST: ClassVar[Consistency]

    @classmethod
    def at_least(cls, revision: int) -> Consistency:
        return cls("at_least", revision)

    @classmethod
    def as_of(cls, revision: int) -> Consistency:
        return cls("as_of", revision)

    @classmethod
    def of(cls, at_least_revision: int | None = None, as_of_revision: int | None = None) -> Consistency:
        """From a request's two optional fields; giving both is a mistake the schemas refuse first."""
        if at_least_revision is not None and as_of_revision is not None:
            raise ValueError("give at_least_revision or as_of_revision, not both")
        if as_of_revision is not None:
            return cls.as_of(as_of_revision)
        if at_least_revision is not None:
            return cls.at_least(at_least_revision)
        return cls.LATEST

    @property
    def at_least_revision(self) -> int | None:
        """The revision the process's facts must reflect first (None: whatever they reflect now)."""
        return self.revision if self.kind == "at_least" else None


Consistency.LATEST = Consistency()
LATEST = Consistency.LATEST
