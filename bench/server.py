"""The real service for the benchmarks: `authz serve` (gunicorn, sync workers), as `tests/servers.py` starts it.

Unlike the test helper it keeps the server's output in a log file, gives the
Prometheus directory a place inside the run's directory (removed with it) and
knows the master's pid, so that the workers' memory can be read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.servers import PROJECT, free_port
from tests.support import TEST_KEY

KEY = TEST_KEY
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


@dataclass(frozen=True)
class Server:
    base: str
    master_pid: int
    workers: int
    log: Path

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the master's children."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces: the fields after it start after the last ')'.
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.master_pid:
                children.append(int(entry.name))
        return sorted(children)

    def worker_rss_mb(self) -> dict[int, float]:
        return {pid: resident_mb(pid) for pid in self.worker_pids()}


def resident_mb(pid: int) -> float:
    """A process's resident set size (VmRSS), in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise ValueError(f"no VmRSS for {pid}")


@contextmanager
def serve(database_url: str, workers: int, run_directory: Path, label: str) -> Iterator[Server]:
    """Start `authz serve` on a free port and wait until it is ready; stop it afterwards, whatever happens."""
    port = free_port()
    metrics = run_directory / f"metrics-{label}"
    metrics.mkdir(parents=True, exist_ok=True)
    log = run_directory / f"server-{label}.log"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AUTHZ_PRESHARED_KEY": KEY,
        "PORT": str(port),
        "AUTHZ_WORKERS": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }
    authz = Path(sys.executable).with_name("authz")
    with log.open("wb") as output:
        process = subprocess.Popen([str(authz), "serve"], cwd=PROJECT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base, log)
        server = Server(base, process.pid, workers, log)
        _wait_workers(server)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"authz serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"authz serve did not become ready in 120 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _wait_workers(server: Server) -> None:
    deadline = time.monotonic() + 30
    while len(server.worker_pids()) < server.workers and time.monotonic() < deadline:
        time.sleep(0.1)
