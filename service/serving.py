"""The production server `authz serve` (and `make serve`) runs as `python -m service.serving`: granian, serving `service.wsgi:app`.

Why granian (bench/SERVING.md has the figures): its HTTP/1.1 is Rust (hyper on
tokio), so a connection costs a Python thread only while a complete request is
being answered. Idle or trickling clients wait in the event loop, never in a
worker; connections are kept alive; and on this app it serves `/v1/authorize`
at about three times gunicorn's sync workers with a lower p99.

The process model is gunicorn's with `preload_app`: this process (the master)
builds the app once — migrations, the policy file validated and taken up —
then forks the workers, each with `AUTHZ_THREADS` threads running the app.
- SIGHUP to the master: the policy file is loaded again here (taken up only if
  it loads, passes its scenarios and properties); then granian replaces every
  worker with a fresh fork, one at a time. Workers also follow the change log,
  so a policy taken up anywhere reaches them either way.
- SIGTERM or SIGINT: the workers stop accepting, finish the requests in
  flight (at most `GRACEFUL_SECONDS`, then they are killed), write what their
  decision log still buffers and exit; the
  Prometheus folder this process made is removed.
- `PROMETHEUS_MULTIPROC_DIR`: every worker writes its metrics there and
  `/metrics` sums them. Unset, a temporary folder is made and removed at exit.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.database import Database

HEADER_READ_TIMEOUT_MS = 10_000  # a client that has not sent its headers by then is disconnected
GRACEFUL_SECONDS = 10  # in-flight requests this long to finish at shutdown, then the worker is killed
RESPAWN_INTERVAL_SECONDS = 0.5  # SIGHUP: between starting a worker's replacement and stopping it
log = logging.getLogger("authz.server")


def worker_app():
    """In a freshly forked worker: the master's app, its database connections left to the master.

    A granian worker is a multiprocessing process: when it stops gracefully, its exit runs the
    finalizers registered here, so the decision log writes what it still buffers, then the log its lines."""
    from service.http.logs import flush_logs
    from service.wsgi import app

    runtime = app.extensions["authz"]
    runtime.after_fork()
    multiprocessing.util.Finalize(None, runtime.close, exitpriority=10)
    multiprocessing.util.Finalize(None, flush_logs, exitpriority=0)  # after close: its lines too
    return app


def build_app() -> None:
    """Build the app once, here, before the fork (migrations, the policy), and freeze what it is made of.

    Frozen objects are never scanned by the cyclic collector again, in this process or in the
    workers forked from it: a worker's full collections then go over what the worker made
    itself. Unfrozen, they went over the whole app as well, and paused workers for 40-80 ms
    in the middle of requests (bench/LARGE.md's cold rounds on SQLite: their p99).
    """
    import service.wsgi  # the app, built on import

    warn_if_undersized(service.wsgi.app.extensions["authz"].db)
    gc.collect()  # what building it left behind, before it is frozen for good
    gc.freeze()


def warn_if_undersized(db: Database) -> None:
    """Log a warning at start when PostgreSQL's shared_buffers cannot hold what a cold decision reads."""
    advice = db.memory_warning()
    if advice is not None:
        log.warning("%s", advice)


def reload_policy() -> None:
    """SIGHUP: load policy.polar again; it is used only if it loads and passes every scenario and property."""
    from service.wsgi import app

    result = app.extensions["authz"].keeper.reload()
    (log.info if result.loaded else log.error)("policy reload: %s", result.reason)
    gc.freeze()  # the policy the next workers are forked with, like the app (`build_app`)


def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Build the app, fork `workers` granian workers of `threads` threads each, serve until SIGTERM or SIGINT."""
    made_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made_metrics_dir = tempfile.mkdtemp(prefix="authz-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made_metrics_dir
    else:  # counters of an earlier run would be summed with this one's
        metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
    try:
        _serve(host, port, workers, threads)
    finally:
        if made_metrics_dir is not None:
            shutil.rmtree(made_metrics_dir, ignore_errors=True)


def _serve(host: str, port: int, workers: int, threads: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    build_app()
    server = Granian(
        "service.wsgi:app",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        websockets=False,
        workers=workers,
        blocking_threads=threads,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS, keep_alive=True),
        log_access=False,  # the app logs a JSON line per request (service/http/logs.py)
        respawn_failed_workers=True,
        respawn_interval=RESPAWN_INTERVAL_SECONDS,
        workers_kill_timeout=GRACEFUL_SECONDS,
    )
    server.on_reload(reload_policy)
    server.serve(target_loader=worker_app, wrap_loader=False)


if __name__ == "__main__":  # `authz serve` runs this, configured from the environment
    serve(
        os.environ.get("AUTHZ_HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000")),
        int(os.environ.get("AUTHZ_WORKERS", "2")), int(os.environ.get("AUTHZ_THREADS", "2")),
    )
