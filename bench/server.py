"""The real service for the benchmarks: `authz serve` as the tests start it, with a log file and a metrics directory per run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import RunningServer, served
from tests.support import TEST_KEY

KEY = TEST_KEY
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
Server = RunningServer


def resident_mb(pid: int) -> float:
    """A process's resident set size (VmRSS), in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise ValueError(f"no VmRSS for {pid}")


def worker_rss_mb(server: Server) -> dict[int, float]:
    return {pid: resident_mb(pid) for pid in server.worker_pids()}


@contextmanager
def serve(database_url: str, workers: int, run_directory: Path, label: str) -> Iterator[Server]:
    """Start `authz serve` on a free port; its log and its Prometheus directory live in the run's directory."""
    metrics = run_directory / f"metrics-{label}"
    metrics.mkdir(parents=True, exist_ok=True)
    log = run_directory / f"server-{label}.log"
    with served(database_url, workers, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics)}, log_path=log) as server:
        yield server
