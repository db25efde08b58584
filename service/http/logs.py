"""Structured JSON logs, one line per request, with a request id echoed in `X-Request-Id`.

What is logged about a request: its id, method, route pattern (never the raw
path or query string: they hold account and user ids), status, duration and
the API key's id (never the key). Bodies are never logged.

Every request pays for its line, so it is made cheaply: the request id is a
per-process random prefix and a counter (unique without a system call), the
timestamp's text is made once a second, the line is encoded once, and lines are
written together (`LineHandler`): one write every FLUSH_SECONDS per process, not a
system call per request on a file every worker appends to.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
import weakref

REQUEST_ID_HEADER = "X-Request-Id"
FLUSH_SECONDS = 0.2  # the longest a line waits before it is written (a warning or worse: never)
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
log = logging.getLogger("authz.requests")
_encode = json.JSONEncoder(ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # the date and time to the second, formatted once a second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        entry = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry)


class LineHandler(logging.StreamHandler):
    """A stream handler that writes its lines together: every FLUSH_SECONDS, from a thread of its process.

    A line at WARNING or above is written at once, with whatever waits before it. What
    is buffered is written at exit (`logging.shutdown` flushes every handler; a granian
    worker, which leaves with `os._exit`, calls `flush` from its exit finalizers), and a
    forked child starts with an empty buffer: its parent's lines are its parent's to write.
    """

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._writer_pid = 0
        handler = weakref.ref(self)  # the fork hook must not keep a closed handler alive
        os.register_at_fork(after_in_child=lambda: (alive := handler()) is not None and alive._forget_parent())

    def emit(self, record: logging.LogRecord) -> None:  # called by `handle`, with the handler's lock held
        try:
            self._lines.append(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self._write()
            elif self._writer_pid != os.getpid():
                self._writer_pid = os.getpid()
                threading.Thread(target=self._run, name="authz-log-lines", daemon=True).start()
        except Exception:  # noqa: BLE001 - as StreamHandler: a line that cannot be written never fails a request
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:
            self._write()

    def close(self) -> None:
        """Write what is buffered and stop the process's thread."""
        with self.lock:
            self._writer_pid = -1
            self._write()
        super().close()

    def _write(self) -> None:
        lines, self._lines = self._lines, []
        if lines and self.stream is not None:
            self.stream.write("".join(lines))
            self.stream.flush()

    def _run(self) -> None:
        pid = os.getpid()
        while self._writer_pid == pid:
            time.sleep(FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:  # noqa: BLE001, S110 - a closed stream: those lines are lost, the process goes on
                pass

    def _forget_parent(self) -> None:
        self._lines = []
        self._writer_pid = 0


def flush_logs() -> None:
    """Write the lines the `authz` loggers still buffer (a worker's exit, which skips `logging.shutdown`)."""
    for handler in logging.getLogger("authz").handlers:
        handler.flush()


def configure_logging() -> None:
    """Send the `authz` loggers to stderr as JSON lines (once per process)."""
    root = logging.getLogger("authz")
    if any(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers):
        return
    handler = LineHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(os.environ.get("AUTHZ_LOG_LEVEL", "INFO").upper())
    root.propagate = False


class _RequestIds:
    """Ids unique across processes and restarts: 16 random hex digits drawn per process, then a counter."""

    def __init__(self) -> None:
        self._draw()
        os.register_at_fork(after_in_child=self._draw)  # a forked worker must not repeat its parent's ids

    def _draw(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_request_ids = _RequestIds()


def request_id(incoming: str | None) -> str:
    """The caller's `X-Request-Id` if it is well-formed, else a new id."""
    if incoming and _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return _request_ids.new()


def log_request(request_id: str, method: str, route: str, status: int, seconds: float, api_key: str | None) -> None:
    """The request's line: at INFO, or WARNING for a 5xx."""
    level = logging.WARNING if status >= 500 else logging.INFO
    if log.isEnabledFor(level):
        fields = {
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "api_key": api_key,
        }
        # Made and handled as `log.log` would, less its search of the stack for the caller's line.
        log.handle(log.makeRecord(log.name, level, __file__, 0, "request", (), None, extra={"fields": fields}))
