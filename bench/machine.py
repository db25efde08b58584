"""What the figures were measured on: the machine, the software, and how busy the machine was meanwhile."""

from __future__ import annotations

import itertools
import os
import platform
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psycopg

from bench.wrk import wrk_version


def describe(postgres_admin_url: str | None) -> dict[str, str]:
    """The machine and software facts RESULTS.md opens with."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": f"{_meminfo_kb('MemTotal') / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": ", ".join(
            f"{name} {metadata.version(name)}" for name in ("oso", "flask", "sqlalchemy", "granian", "gunicorn", "psycopg")
        ),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgres_version(postgres_admin_url) if postgres_admin_url else "not used",
        "wrk": wrk_version(),
        "commit": _commit(),
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _meminfo_kb(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _postgres_version(admin_url: str) -> str:
    try:
        with psycopg.connect(admin_url, connect_timeout=3) as connection:
            return connection.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        return "unreachable"


def _commit() -> str:
    """The commit measured: `BENCH_COMMIT` when the run is made from an exported copy of the tree, else git's HEAD."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    project = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=project, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=project, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (with uncommitted changes)" if dirty else "")


class Neighbours:
    """CPU time used by processes that are neither this run's nor PostgreSQL's, phase by phase.

    The machine is shared: another session's test suite running meanwhile
    slows every figure down. A thread reads /proc once a second and adds up
    the CPU time of every process outside this run's process tree (PostgreSQL
    is left out: its backends serve this run and others alike), so that the
    report can say how busy the neighbours kept the machine while each figure
    was measured.
    """

    INTERVAL_SECONDS = 1.0

    def __init__(self) -> None:
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._seen: dict[tuple[int, int], float] = {}  # (pid, start time) -> CPU seconds when last read
        self._total = 0.0  # CPU seconds used by the neighbours so far
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-neighbours", daemon=True)
        self._marks: list[tuple[str, float, float]] = []  # phase name, wall clock, neighbours' CPU seconds

    def start(self) -> Neighbours:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def mark(self, phase: str) -> None:
        """A phase begins now (the previous one ends)."""
        self._sample()
        with self._lock:
            self._marks.append((phase, time.monotonic(), self._total))

    def phases(self) -> list[dict]:
        """For each phase: its length, the neighbours' CPU seconds, and that as a share of the machine's cores."""
        self.mark("end")
        cores = os.cpu_count() or 1
        found = []
        for (name, started, before), (_, ended, after) in itertools.pairwise(self._marks):
            seconds = ended - started
            found.append({
                "phase": name, "seconds": seconds, "neighbours_cpu_seconds": after - before,
                "neighbours_share": (after - before) / (seconds * cores) if seconds else 0.0,
            })
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL_SECONDS):
            self._sample()

    def _sample(self) -> None:
        processes = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, _, rest = stat.rpartition(")")
            fields = rest.split()
            comm = name.split("(", 1)[1] if "(" in name else ""
            processes[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / self._ticks, int(fields[19]), comm)
        ours = self._tree(processes)
        with self._lock:
            for pid, (_parent, cpu, started, comm) in processes.items():
                key = (pid, started)
                previous = self._seen.get(key)
                self._seen[key] = cpu
                if previous is not None and pid not in ours and not comm.startswith("postgres"):
                    self._total += cpu - previous

    @staticmethod
    def _tree(processes: dict[int, tuple[int, float, int, str]]) -> set[int]:
        me = os.getpid()
        ours = {me}
        for pid in processes:
            chain, current = [], pid
            while current not in ours and current in processes and current > 1:
                chain.append(current)
                current = processes[current][0]
            if current in ours:
                ours.update(chain)
        return ours
