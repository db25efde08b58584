"""Running the real service (`authz serve`: granian, several workers) for black-box tests, the benchmarks and the soak."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support import TEST_KEY

PROJECT = Path(__file__).resolve().parent.parent
MASTER_PIDS: dict[str, int] = {}  # base URL -> the server master's pid (`authz serve` execs it in place)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class RunningServer:
    base: str
    port: int
    master_pid: int
    workers: int

    def worker_pids(self) -> list[int]:
        """The master's children: its workers (a killed one's replacement included)."""
        children: set[int] = set()
        for task in Path(f"/proc/{self.master_pid}/task").glob("*"):
            try:
                children.update(int(pid) for pid in (task / "children").read_text().split())
            except OSError:
                continue
        return sorted(children)


@contextmanager
def served(
    database_url: str, workers: int = 2, env: dict | None = None, log_path: Path | None = None,
    cwd: Path | None = None,
) -> Iterator[RunningServer]:
    """Start `authz serve` on a free port, wait until it and its workers are ready; stop it afterwards.

    The server logs a line per request: into `log_path` (or a temporary file),
    never into a pipe nobody reads (a full pipe stalls the workers).
    """
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AUTHZ_PRESHARED_KEY": TEST_KEY,
        "PORT": str(port),
        "AUTHZ_HOST": "127.0.0.1",
        "AUTHZ_WORKERS": str(workers),
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment.update(env or {})
    output = log_path.open("wb+") if log_path is not None else tempfile.TemporaryFile()
    authz = Path(sys.executable).with_name("authz")
    process = subprocess.Popen([str(authz), "serve"], cwd=cwd or PROJECT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                output.seek(0)
                text = output.read().decode(errors="replace")
                raise RuntimeError(f"authz serve exited with {process.returncode}:\n{text[-3000:]}")
            try:
                if requests.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("authz serve did not become ready in 120 s")
            time.sleep(0.1)
        server = RunningServer(base, port, process.pid, workers)
        deadline = time.monotonic() + 30
        while len(server.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        MASTER_PIDS[base] = process.pid
        yield server
    finally:
        MASTER_PIDS.pop(base, None)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()


@contextmanager
def running_server(database_url: str, workers: int = 2, env: dict | None = None) -> Iterator[str]:
    """`served`, for tests that only need the base URL."""
    with served(database_url, workers, env) as server:
        yield server.base
