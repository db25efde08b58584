"""Decisions and lists inside one process: `Runtime.authorizer` called in a loop, each call timed.

Warm: the pool's facts are already in the process's fact cache. Cold: the
cache's roles, settings and support flags are emptied before every call, so
each decision reads its facts from the database. The stores being compared
are measured in alternating rounds, so that the machine's noise falls on both.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from bench.workload import LIST_REQUEST, Check
from service.core.runtime import Runtime


class WrongAnswer(AssertionError):
    """The service answered something else than the story says: the figures would measure a bug."""


@dataclass
class Subject:
    """One store measured in process."""

    label: str
    runtime: Runtime
    pool: list[Check]
    rounds: dict[str, list[float]] = field(default_factory=lambda: {"warm": [], "cold": [], "list": []})
    samples: dict[str, list[float]] = field(default_factory=lambda: {"warm": [], "cold": [], "list": []})


def check_answers(subject: Subject) -> None:
    authorize = subject.runtime.authorizer.authorize
    for check in subject.pool:
        if authorize(check.actor, check.action, check.resource)["allowed"] != check.expected:
            raise WrongAnswer(f"{subject.label}: {check} answered {not check.expected}")


def measure(subjects: list[Subject], rounds: int, warm_calls: int, cold_calls: int, list_calls: int) -> None:
    """Fill each subject's per-round medians (seconds) and raw samples."""
    for subject in subjects:
        check_answers(subject)  # also warms the cache with the whole pool
    for round_number in range(rounds):
        order = subjects[round_number % len(subjects):] + subjects[: round_number % len(subjects)]
        for subject in order:
            for name, samples in (
                ("warm", _warm(subject, warm_calls)),
                ("cold", _cold(subject, cold_calls)),
                ("list", _list(subject, list_calls)),
            ):
                subject.rounds[name].append(statistics.median(samples))
                subject.samples[name].extend(samples)


def _warm(subject: Subject, calls: int) -> list[float]:
    authorize, pool, clock = subject.runtime.authorizer.authorize, subject.pool, time.perf_counter
    for check in pool:  # back in the cache if a cold loop evicted it
        authorize(check.actor, check.action, check.resource)
    samples = []
    for number in range(calls):
        check = pool[number % len(pool)]
        started = clock()
        authorize(check.actor, check.action, check.resource)
        samples.append(clock() - started)
    return samples


def _cold(subject: Subject, calls: int) -> list[float]:
    authorize, pool, clock, cache = subject.runtime.authorizer.authorize, subject.pool, time.perf_counter, subject.runtime.cache
    samples = []
    for number in range(calls):
        check = pool[(number * 7) % len(pool)]
        cache._roles.clear()
        cache._settings.clear()
        cache._support.clear()
        started = clock()
        authorize(check.actor, check.action, check.resource)
        samples.append(clock() - started)
    return samples


def _list(subject: Subject, calls: int) -> list[float]:
    list_accounts, clock = subject.runtime.authorizer.list_accounts, time.perf_counter
    actor, action = LIST_REQUEST["actor"]["id"], LIST_REQUEST["action"]
    samples = []
    for _ in range(calls):
        started = clock()
        answer = list_accounts(actor, action)
        samples.append(clock() - started)
        if len(answer["ids"]) != 1000:
            raise WrongAnswer(f"{subject.label}: the partner's list has {len(answer['ids'])} accounts, not 1,000")
    return samples
