"""Hostile clients of a real server: connections that send nothing, or their headers one byte a second."""

from __future__ import annotations

import socket
import threading
import time

import requests

from tests.support import TEST_KEY


class SlowClients:
    """`idle` connections that send nothing and `trickling` ones that send a header one byte a second."""

    def __init__(self, port: int, idle: int, trickling: int) -> None:
        self.port = port
        self.counts = (idle, trickling)
        self.idle: list[socket.socket] = []
        self.trickling: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="trickle", daemon=True)

    def __enter__(self) -> SlowClients:
        idle, trickling = self.counts
        try:
            for _ in range(idle):
                self.idle.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
            for _ in range(trickling):
                connection = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                self.trickling.append(connection)
        except BaseException:
            self.__exit__()
            raise
        self._thread.start()
        time.sleep(1.0)  # the server has taken them up, and every trickling one has sent a byte more
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(1.0):
            for connection in list(self.trickling):
                try:
                    connection.sendall(b"a")
                except OSError:
                    self.trickling.remove(connection)

    def still_open(self) -> int:
        """How many of the slow connections the server has not closed."""
        count = 0
        for connection in self.idle + self.trickling:
            connection.setblocking(False)
            try:
                count += connection.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                count += 1
            except OSError:
                pass
            finally:
                connection.setblocking(True)
        return count

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for connection in self.idle + self.trickling:
            connection.close()


def probe(base: str, path: str, body: bytes | None, timeout: float) -> float:
    """Seconds to a 200 on a fresh connection; `timeout` when there is none by then (no answer, an error, another status)."""
    headers = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
    started = time.perf_counter()
    try:
        if body is None:
            response = requests.get(base + path, timeout=timeout)
        else:
            response = requests.post(base + path, data=body, headers=headers, timeout=timeout)
    except requests.RequestException:
        return timeout
    elapsed = time.perf_counter() - started
    return elapsed if response.status_code == 200 else timeout
