"""Prometheus metrics, aggregated across worker processes when `PROMETHEUS_MULTIPROC_DIR` is set."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("authz_requests_total", "HTTP requests answered, by endpoint and status", ["endpoint", "status"])
LATENCY = Histogram(
    "authz_request_duration_seconds",
    "Time to answer a request, by endpoint",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DECISIONS = Counter("authz_decisions_total", "Decisions made, by outcome", ["allowed"])
REVISION = Gauge("authz_revision", "The latest revision a worker's facts reflect", multiprocess_mode="max")
UNAVAILABLE = Counter("authz_database_unavailable_total", "Requests refused because the database could not be read")
ALLOWED, DENIED = DECISIONS.labels("true"), DECISIONS.labels("false")
_children: dict[tuple[str, int], tuple] = {}  # (endpoint, status) -> its request counter and latency histogram
_revision_seen = -1


def count_request(route: str, status: int, seconds: float) -> None:
    """Count and time one request answered, by its route pattern and status."""
    key = (route, status)
    children = _children.get(key)
    if children is None:  # labels() looks up and locks: once per endpoint and status, not per request
        children = _children[key] = (REQUESTS.labels(route, str(status)), LATENCY.labels(route))
    children[0].inc()
    children[1].observe(seconds)
    if status == 503:
        UNAVAILABLE.inc()


def record_decisions(revision: int, outcomes: list[bool]) -> None:
    global _revision_seen
    allowed = sum(outcomes)
    if allowed:
        ALLOWED.inc(allowed)
    if len(outcomes) > allowed:
        DENIED.inc(len(outcomes) - allowed)
    if revision != _revision_seen:
        _revision_seen = revision
        REVISION.set(revision)


def render_metrics() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
