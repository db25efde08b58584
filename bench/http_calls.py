"""Timing single HTTP calls from Python (batch and list): one `requests.Session`, each call timed end to end."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from bench.server import HEADERS

Verify = Callable[[dict], None]


@dataclass
class Target:
    """One endpoint of one server, asked with one body; its answers checked by `verify`."""

    label: str
    url: str
    body: bytes | None  # None: GET (the /healthz floor)
    verify: Verify
    rounds: list[float] = field(default_factory=list)  # the median of each round, seconds
    samples: list[float] = field(default_factory=list)


def call(session: requests.Session, url: str, body: bytes | None) -> tuple[float, dict]:
    """POST `body` to `url` (GET when there is no body); the time to the whole answer, and the answer."""
    started = time.perf_counter()
    if body is None:
        answer = session.get(url, timeout=60)
    else:
        answer = session.post(url, data=body, headers=HEADERS, timeout=60)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise AssertionError(f"{url} answered {answer.status_code}: {answer.text[:500]}")
    return elapsed, answer.json()


def measure(targets: list[Target], rounds: int, calls: int, warmup: int = 5) -> None:
    """Call each target `calls` times per round, the targets alternating call by call, after `warmup` calls each."""
    session = requests.Session()
    for target in targets:
        for _ in range(warmup):
            target.verify(call(session, target.url, target.body)[1])
    for _ in range(rounds):
        per_round: dict[str, list[float]] = {target.label: [] for target in targets}
        for _ in range(calls):
            for target in targets:
                elapsed, answer = call(session, target.url, target.body)
                target.verify(answer)
                per_round[target.label].append(elapsed)
        for target in targets:
            target.rounds.append(statistics.median(per_round[target.label]))
            target.samples.extend(per_round[target.label])
