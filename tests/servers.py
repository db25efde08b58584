"""Running the real service (`authz serve`: gunicorn, several workers) for black-box tests."""

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
from pathlib import Path

import requests

from tests.support import TEST_KEY

PROJECT = Path(__file__).resolve().parent.parent
MASTER_PIDS: dict[str, int] = {}  # base URL -> gunicorn master pid (`authz serve` execs gunicorn in place)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(database_url: str, workers: int = 2, env: dict | None = None) -> Iterator[str]:
    """Start `authz serve` on a free port; yields its base URL; stops it afterwards."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AUTHZ_PRESHARED_KEY": TEST_KEY,
        "PORT": str(port),
        "AUTHZ_WORKERS": str(workers),
        **(env or {}),
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    authz = Path(sys.executable).with_name("authz")
    # The server logs a line per request: into a file, never a pipe nobody reads (a full pipe stalls it).
    output = tempfile.TemporaryFile()
    process = subprocess.Popen([str(authz), "serve"], cwd=PROJECT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                output.seek(0)
                text = output.read().decode(errors="replace")
                raise RuntimeError(f"authz serve exited with {process.returncode}:\n{text[-3000:]}")
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("authz serve did not become ready in 60 s")
            time.sleep(0.1)
        MASTER_PIDS[base] = process.pid
        yield base
    finally:
        MASTER_PIDS.pop(base, None)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()
