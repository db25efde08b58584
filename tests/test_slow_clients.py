"""Slow and idle clients cannot stop the real server: decisions and health checks still answer at once (issue 11)."""

from __future__ import annotations

import http.client
import json
import statistics

from tests.servers import served
from tests.slow_clients import SlowClients, probe
from tests.support import TEST_KEY, account, user

IDLE, TRICKLING = 40, 40
PROBES = 20
BOUND = 0.100  # seconds: the median probe must answer within this


def test_80_idle_and_trickling_connections_do_not_stop_healthz_or_authorize(database_url):
    body = json.dumps({"actor": user("u_nobody"), "action": "read", "resource": account("acc_1")}).encode()
    with served(database_url, workers=2) as server:
        assert probe(server.base, "/v1/authorize", body, 5.0) < 5.0  # the facts it reads are cached before the probes
        with SlowClients(server.port, IDLE, TRICKLING) as slow:
            healthz = [probe(server.base, "/healthz", None, 2.0) for _ in range(PROBES)]
            authorize = [probe(server.base, "/v1/authorize", body, 2.0) for _ in range(PROBES)]
            # the test measured what it meant to: the slow connections were still open, not closed by the server
            assert slow.still_open() == IDLE + TRICKLING
        assert statistics.median(healthz) < BOUND, f"/healthz probes (s): {healthz}"
        assert statistics.median(authorize) < BOUND, f"/v1/authorize probes (s): {authorize}"
        assert max(healthz + authorize) < 2.0, "a probe was not answered at all"
        # connections are kept alive: one connection answers request after request
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        headers = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
        sockets = set()
        for _ in range(5):
            connection.request("POST", "/v1/authorize", body=body, headers=headers)
            answer = connection.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["allowed"] is False
            assert connection.sock is not None, "the server closed the connection after answering"
            sockets.add(id(connection.sock))
        assert len(sockets) == 1
        connection.close()
