"""The production server (`authz serve`: granian, several workers): shutdown, metrics across workers, its folders, limits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.servers import served
from tests.support import TEST_KEY, account, user

HEADERS = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
BODY = json.dumps({"actor": user("u_nobody"), "action": "read", "resource": account("acc_1")}).encode()


def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'authz.sqlite3'}"


def read_answer(connection: socket.socket) -> bytes:
    connection.settimeout(20)
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
        chunk = connection.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def stopped_within(pid: int, seconds: float) -> bool:
    """Whether process `pid` (a child of this one) has exited within `seconds` (a zombie not yet reaped counts)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_sigterm_finishes_the_request_in_flight_then_stops(tmp_path):
    with served(sqlite(tmp_path), workers=2) as server:
        connection = socket.create_connection(("127.0.0.1", server.port))
        head = (f"POST /v1/authorize HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TEST_KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n").encode()
        connection.sendall(head + BODY[:10])  # the request is in flight: its body is still coming
        time.sleep(0.5)
        os.kill(server.master_pid, signal.SIGTERM)
        time.sleep(1.0)
        connection.sendall(BODY[10:])
        answer = read_answer(connection)
        connection.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["allowed"] is False
        assert stopped_within(server.master_pid, 20), "the server did not stop after SIGTERM"
        try:
            requests.get(server.base + "/healthz", timeout=2)
            raise AssertionError("the server still answers after stopping")
        except requests.ConnectionError:
            pass


def test_every_request_is_logged_while_serving_and_the_last_ones_at_shutdown(tmp_path):
    """Workers write their lines together (every 0.2 s): one line per request, soon, and those still
    buffered when SIGTERM stops the workers are written on their way out."""
    log = tmp_path / "server.log"

    def logged() -> list[str]:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        return [line["request_id"] for line in lines if line.get("route") == "/v1/authorize"]

    ids = [f"req-{number}" for number in range(20)]
    with served(sqlite(tmp_path), workers=2, log_path=log) as server:
        with requests.Session() as session:
            for identifier in ids[:10]:
                answer = session.post(server.base + "/v1/authorize", data=BODY, headers={**HEADERS, "X-Request-Id": identifier})
                assert answer.status_code == 200
            deadline = time.monotonic() + 5
            while sorted(logged()) != sorted(ids[:10]) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sorted(logged()) == sorted(ids[:10])
            for identifier in ids[10:]:
                session.post(server.base + "/v1/authorize", data=BODY, headers={**HEADERS, "X-Request-Id": identifier})
    assert sorted(logged()) == sorted(ids)


def test_metrics_add_up_every_worker(tmp_path):
    metrics = tmp_path / "metrics"
    with served(sqlite(tmp_path), workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics)}) as server:
        workers = set(server.worker_pids())
        assert len(workers) == 2
        sent = 0
        with ThreadPoolExecutor(8) as pool:  # fresh connections, at once: both workers answer some
            while sent < 4000:
                answers = list(pool.map(lambda _: requests.post(server.base + "/v1/authorize", data=BODY,
                                                               headers=HEADERS).status_code, range(200)))
                assert answers == [200] * 200
                sent += 200
                written = {int(path.stem.rsplit("_", 1)[1]) for path in metrics.glob("counter_*.db")}
                if workers <= written:
                    break
        assert workers <= written, f"only {written & workers} of the workers {workers} answered"
        text = requests.get(server.base + "/metrics").text
        line = next(line for line in text.splitlines()
                    if line.startswith('authz_requests_total{endpoint="/v1/authorize",status="200"}'))
        assert float(line.split()[-1]) == sent
        decisions = next(line for line in text.splitlines() if line.startswith('authz_decisions_total{allowed="false"}'))
        assert float(decisions.split()[-1]) == sent


def test_the_metrics_folder_it_makes_is_removed_when_it_stops(tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with served(sqlite(tmp_path), workers=2, env={"TMPDIR": str(temporary)}) as server:
        made = list(temporary.glob("authz-metrics-*"))
        assert len(made) == 1 and any(made[0].iterdir())  # the workers write their metrics there
        requests.get(server.base + "/healthz")
    assert list(temporary.iterdir()) == []


def test_a_folder_given_in_prometheus_multiproc_dir_is_emptied_at_start_and_kept(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_1.db").write_bytes(b"from an earlier run")
    with served(sqlite(tmp_path), workers=1, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics)}):
        assert not (metrics / "counter_1.db").exists()
    assert metrics.is_dir()


def test_a_long_target_is_a_json_414_and_large_headers_a_json_431(tmp_path):
    with served(sqlite(tmp_path), workers=1) as server:
        long_target = requests.get(server.base + "/healthz?x=" + "a" * 9000)
        assert long_target.status_code == 414
        assert long_target.json()["error"]["code"] == "uri_too_long"
        large_field = requests.get(server.base + "/healthz", headers={"X-Large": "a" * 9000})
        assert large_field.status_code == 431
        assert large_field.json()["error"]["code"] == "headers_too_large"
        many_fields = requests.get(server.base + "/healthz", headers={f"X-Field-{i}": "a" * 500 for i in range(80)})
        assert many_fields.status_code == 431
        assert many_fields.json()["error"]["code"] == "headers_too_large"
        assert requests.get(server.base + "/healthz?x=" + "a" * 7000).status_code == 400  # an unknown field, read
        assert requests.get(server.base + "/healthz", headers={"X-Large": "a" * 7000}).status_code == 200


def test_authz_serve_refuses_zero_workers_or_threads(tmp_path):
    import sys

    from tests.servers import PROJECT

    authz = Path(sys.executable).with_name("authz")
    for option in ("--workers", "--threads"):
        result = subprocess.run([str(authz), "serve", option, "0"], cwd=PROJECT, capture_output=True, text=True,
                                env={**os.environ, "DATABASE_URL": sqlite(tmp_path)}, timeout=60)
        assert result.returncode == 2 and "at least 1" in result.stderr


def test_a_worker_that_dies_is_replaced(tmp_path):
    with served(sqlite(tmp_path), workers=2) as server:
        before = set(server.worker_pids())
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not (victim not in (now := set(server.worker_pids())) and len(now) == 2):
            assert time.monotonic() < deadline, f"workers {now}, {victim} killed"
            time.sleep(0.1)
        answers = [requests.post(server.base + "/v1/authorize", data=BODY, headers=HEADERS).status_code for _ in range(20)]
        assert answers == [200] * 20
        assert not stopped_within(server.master_pid, 0.5)


def test_workers_inherit_the_app_frozen_so_their_collections_skip_it(tmp_path):
    """The master builds the app and freezes it before forking: a worker's cyclic collector never scans the
    app again (its full collections had gone over the app too and paused workers 40-80 ms mid-request)."""
    script = """
import gc, os, sys
from service import serving
serving.build_app()
pid = os.fork()
if pid == 0:
    sys.stdout.write(f"{gc.get_freeze_count()} {len(gc.get_objects())}")
    os._exit(0)
os.waitpid(pid, 0)
"""
    found = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "DATABASE_URL": sqlite(tmp_path)},
        capture_output=True, text=True, timeout=120, check=True,
    )
    frozen, tracked = map(int, found.stdout.split())
    assert frozen > 50_000, found.stdout  # the app: modules, the policy's compiled table, the schemas
    assert tracked < frozen / 100, found.stdout  # what a worker's collector still has to look at
