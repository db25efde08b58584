"""The request log's lines are written together (`LineHandler`): in order, soon, at once for a warning, and never
twice after a fork."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from service.http import logs
from service.http.logs import JsonFormatter, LineHandler


@contextmanager
def line_logger(name: str, stream) -> Iterator[tuple[logging.Logger, LineHandler]]:
    """A logger of its own writing through a LineHandler on `stream`; the handler is closed afterwards."""
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger(name)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield log, handler
    finally:
        log.removeHandler(handler)
        handler.close()


@pytest.fixture
def logger():
    """`line_logger` on a StringIO."""
    stream = io.StringIO()
    with line_logger("authz.test_request_log", stream) as (log, handler):
        yield log, handler, stream


def messages(text: str) -> list[str]:
    return [json.loads(line)["message"] for line in text.splitlines()]


def test_lines_wait_to_be_written_together_and_a_warning_takes_them_along(logger, monkeypatch):
    log, handler, stream = logger
    monkeypatch.setattr(logs, "FLUSH_SECONDS", 30.0)  # the thread does not write during this test
    log.info("first")
    log.info("second")
    assert stream.getvalue() == ""
    log.warning("third")
    assert messages(stream.getvalue()) == ["first", "second", "third"]
    log.info("fourth")
    handler.flush()
    assert messages(stream.getvalue()) == ["first", "second", "third", "fourth"]


def test_the_process_thread_writes_within_a_flush_interval(logger):
    log, _handler, stream = logger
    log.info("soon")
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert messages(stream.getvalue()) == ["soon"]


def test_a_forked_child_writes_only_its_own_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "FLUSH_SECONDS", 30.0)
    path = tmp_path / "lines.log"
    with path.open("a") as stream, line_logger("authz.test_request_log.fork", stream) as (log, handler):
        log.info("parent's")
        pid = os.fork()
        if pid == 0:  # the child: its parent's buffered line is not its own
            try:
                log.info("child's")
                handler.flush()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        handler.flush()
    assert sorted(messages(path.read_text())) == ["child's", "parent's"]
