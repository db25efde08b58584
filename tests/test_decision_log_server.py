"""The decision log under the real server (gunicorn, 2 sync workers): every decision written, none lost at shutdown."""

from __future__ import annotations

import json

import requests

from models.database import Database
from models.decision_log import DecisionStorage
from tests.servers import served
from tests.support import TEST_KEY

HEADERS = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}


def test_every_decision_is_written_by_the_time_the_server_has_stopped(database_url, tmp_path):
    body = {"checks": [{"actor": {"type": "User", "id": f"u_{i}"}, "action": "read",
                        "resource": {"type": "Account", "id": "acc_1"}} for i in range(1000)]}
    with served(database_url, 2, log_path=tmp_path / "server.log") as server:
        session = requests.Session()
        for _ in range(10):
            answer = session.post(server.base + "/v1/authorize/batch", data=json.dumps(body), headers=HEADERS)
            assert answer.status_code == 200
    # SIGTERM: each worker writes what it still buffers as it exits (gunicorn's worker_exit).
    db = Database(database_url)
    assert DecisionStorage(db).count() == 10_000
    db.dispose()
    assert "Traceback" not in (tmp_path / "server.log").read_text()
