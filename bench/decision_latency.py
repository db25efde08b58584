"""How long one `authorize` takes: in-process (warm and cold) and over HTTP (real gunicorn server).

    .venv/bin/python bench/decision_latency.py

Prints medians and the 10th/90th percentiles; numbers land in bench/RESULTS.md by hand or by `make bench`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import serve  # noqa: E402
from models.changelog import Who  # noqa: E402
from service.core.runtime import Runtime  # noqa: E402
from tests.support import TEST_KEY  # noqa: E402


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    q = statistics.quantiles(samples, n=10)
    return f"median {statistics.median(samples) * 1e6:8.1f} µs  (p10 {q[0] * 1e6:.1f}, p90 {q[-1] * 1e6:.1f}, n={len(samples)})"


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/bench.sqlite3"
        runtime = Runtime.build({"DATABASE_URL": url})
        system = Who(None, None)
        runtime.store.create_account("acc_b", "B", "u_client", system)
        runtime.store.invite("acc_b", "u_partner", "payment_manager", system)
        resource = {"type": "Account", "id": "acc_b"}
        authorizer = runtime.authorizer
        for _ in range(1000):
            authorizer.authorize("u_partner", "manage_subscription", resource)
        warm = []
        for _ in range(20000):
            started = time.perf_counter()
            authorizer.authorize("u_partner", "manage_subscription", resource)
            warm.append(time.perf_counter() - started)
        print("in-process, warm  :", percentiles(warm))
        cold = []
        for number in range(2000):
            runtime.cache._roles.clear()
            runtime.cache._settings.clear()
            runtime.cache._support.clear()
            started = time.perf_counter()
            authorizer.authorize(f"u_{number}", "read", resource)
            cold.append(time.perf_counter() - started)
        print("in-process, cold  :", percentiles(cold))
        runtime.close()

        # bench.server keeps the server's request log in a file: an undrained pipe would stall it.
        with serve(url, 2, Path(directory), "decision-latency") as server:
            base = server.base
            session = requests.Session()
            body = {"actor": {"type": "User", "id": "u_partner"}, "action": "manage_subscription", "resource": resource}
            headers = {"Authorization": f"Bearer {TEST_KEY}"}
            for _ in range(200):
                session.post(base + "/v1/authorize", json=body, headers=headers)
            over_http = []
            for _ in range(3000):
                started = time.perf_counter()
                answer = session.post(base + "/v1/authorize", json=body, headers=headers)
                over_http.append(time.perf_counter() - started)
                assert answer.status_code == 200
            print("over HTTP (1 conn):", percentiles(over_http))


if __name__ == "__main__":
    main()
