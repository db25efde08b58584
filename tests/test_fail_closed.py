"""Fail closed: with the database cut off, nothing is allowed and nothing is written; then it recovers.

The real server (2 workers) reaches PostgreSQL through a TCP proxy the test
cuts and restores, so the database goes away for the service only.
"""

from __future__ import annotations

import time

import requests

from tests.conftest import new_postgres_database
from tests.proxy import CuttableProxy
from tests.servers import running_server
from tests.support import Api, account, http_transport, user

CHECK = {"actor": user("u_admin"), "action": "read", "resource": account("acc_1")}


def wait_for(predicate, seconds: float = 20.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not true after {seconds} s")
        time.sleep(0.1)
    return time.monotonic() - started


def test_database_cut_off_then_back(tmp_path):
    proxy = CuttableProxy("127.0.0.1", 5432)
    try:
        with new_postgres_database("127.0.0.1", proxy.port) as url, running_server(url, workers=2) as base:
            api = Api(http_transport(base, requests.Session()))
            api.create_account("acc_1", "u_admin")
            before = api.invite("acc_1", "u_reader", "reader").json["revision"]
            for _ in range(10):  # warm every worker's cache with an "allowed"
                assert api.post("/v1/authorize", CHECK).json["allowed"] is True

            proxy.cut()
            time.sleep(1.0)  # the workers notice within a second (see facts.PostgresWatcher)
            decisions = [api.post("/v1/authorize", CHECK) for _ in range(20)]
            assert all(answer.status == 503 for answer in decisions), decisions
            assert all(answer.json["error"]["code"] == "unavailable" for answer in decisions)
            batch = api.post("/v1/authorize/batch", {"checks": [CHECK]})
            assert batch.status == 503 and "results" not in batch.json
            assert api.post("/v1/actions", {"actor": user("u_admin"), "resource": account("acc_1")}).status == 503
            listing = {"actor": user("u_admin"), "action": "read", "resource_type": "Account"}
            assert api.post("/v1/list", listing).status == 503
            assert api.get("/readyz").status == 503
            assert api.get("/healthz").status == 200
            assert api.invite("acc_1", "u_new", "collaborator").status == 503
            assert api.delete("/v1/accounts/acc_1/members/u_reader").status == 503

            proxy.restore()
            recovery = wait_for(lambda: api.get("/readyz").status == 200)
            wait_for(lambda: api.post("/v1/authorize", CHECK).status == 200)
            assert api.post("/v1/authorize", CHECK).json["allowed"] is True
            # Nothing the outage refused was written.
            assert api.get("/readyz").json["revision"] == before
            members = api.get("/v1/accounts/acc_1/members").json["members"]
            assert members == [{"user": "u_admin", "role": "admin"}, {"user": "u_reader", "role": "reader"}]
            # And writes work again, without a restart.
            assert api.invite("acc_1", "u_new", "collaborator").status == 201
            assert recovery < 15
    finally:
        proxy.close()
