"""What strict input costs on the hottest path: reading a decision body, and a whole `POST /v1/authorize`.

Two measurements, each comparing in alternating rounds of one run, so that the
machine's noise falls on both sides:

- the body reader alone: `json.loads` (what the service used before) against
  `service.http.json_body.parse` (content type, UTF-8, depth, duplicate keys,
  non-finite numbers, lone surrogates), on an authorize body and batches of 100
  and 1,000 checks;
- a whole request through the Flask test client (authentication, the quick path,
  the decision, the answer) on a SQLite store: in one process with the reader of
  before strict input and `json_body` swapped in alternating rounds; and in a fresh
  process per round for the code of two checkouts (`--before`, e.g. main before
  strict input, and `--after`, by default this one).

    .venv/bin/python -m bench.strict_input --before /path/to/checkout [--after /path/to/checkout] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from service.http.errors import ApiError
from service.http.json_body import MAX_BODY_BYTES, parse

CHECK = {
    "actor": {"type": "User", "id": "u_partner"},
    "action": "manage_subscription",
    "resource": {"type": "Account", "id": "acc_b"},
}
BODIES = {
    "authorize": json.dumps({**CHECK, "at_least_revision": 12}).encode(),
    "batch of 100": json.dumps({"checks": [CHECK] * 100}).encode(),
    "batch of 1,000": json.dumps({"checks": [CHECK] * 1000}).encode(),
}

# One round of whole requests, run in a fresh process with the checkout to measure first on sys.path.
REQUEST_ROUND = r"""
import json, statistics, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from service.app import create_app
calls = int(sys.argv[2])
app = create_app({"DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3", "AUTHZ_PRESHARED_KEY": "k"})
import logging
logging.disable(logging.CRITICAL)
client = app.test_client()
headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
client.post("/v1/accounts", data=json.dumps({"id": "acc_b", "name": "B", "admin": "u_client"}), headers=headers)
body = json.dumps({"actor": {"type": "User", "id": "u_client"}, "action": "read",
                   "resource": {"type": "Account", "id": "acc_b"}}).encode()
samples = []
for number in range(calls + 200):
    started = time.perf_counter()
    response = client.post("/v1/authorize", data=body, headers=headers)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and response.json["allowed"] is True, response.data
    if number >= 200:
        samples.append(elapsed)
print(json.dumps({"module": sys.modules["service.app"].__file__, "median": statistics.median(samples)}))
"""


def _reader_before_strict_input() -> Any:
    """How `declare._json_body` read a body before strict input (the content length, then `json.loads`)."""
    from flask import request

    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", "too large")
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from error


def measure_readers_in_requests(rounds: int, calls: int) -> dict[str, float]:
    """In one process, whole `POST /v1/authorize` requests with the reader before strict input and with
    `json_body` (swapped in `declare` in alternating rounds): the median of each one's per-round medians."""
    import logging
    import tempfile

    from service.app import create_app
    from service.http import declare

    app = create_app({"DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3", "AUTHZ_PRESHARED_KEY": "k"})
    # The route, where the reader is swapped: the decision lane in front of it would answer a plain
    # decision without `declare._json_body` (it reads through `json_body.parse`, as the route does).
    app.wsgi_app = app.wsgi_app.app
    logging.disable(logging.CRITICAL)
    client = app.test_client()
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
    client.post("/v1/accounts", data=json.dumps({"id": "acc_b", "name": "B", "admin": "u_client"}), headers=headers)
    body = json.dumps({"actor": {"type": "User", "id": "u_client"}, "action": "read",
                       "resource": {"type": "Account", "id": "acc_b"}}).encode()
    readers = {"before": _reader_before_strict_input, "json_body": declare._json_body}
    medians: dict[str, list[float]] = {label: [] for label in readers}
    try:
        for round_number in range(rounds):
            for label, reader in list(readers.items())[:: 1 if round_number % 2 == 0 else -1]:
                declare._json_body = reader
                samples = []
                for _ in range(calls):
                    started = time.perf_counter()
                    response = client.post("/v1/authorize", data=body, headers=headers)
                    samples.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.data
                medians[label].append(statistics.median(samples))
    finally:
        declare._json_body = readers["json_body"]
        app.extensions["authz"].close()
    return {label: statistics.median(values) for label, values in medians.items()}


def _reader_round(raw: bytes, calls: int) -> dict[str, float]:
    medians = {}
    for label, read in (("json.loads", json.loads), ("json_body.parse", lambda body: parse(body, "application/json"))):
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            read(raw)
            samples.append(time.perf_counter() - started)
        medians[label] = statistics.median(samples)
    return medians


def measure_reader(rounds: int) -> dict[str, dict[str, float]]:
    """Per body: the median over rounds of each reader's per-round median, in seconds."""
    results = {}
    for name, raw in BODIES.items():
        calls = 5_000 if len(raw) < 1_000 else 300 if len(raw) < 20_000 else 60
        per_round = [_reader_round(raw, calls) for _ in range(rounds)]
        results[name] = {label: statistics.median(r[label] for r in per_round) for label in per_round[0]}
    return results


def measure_requests(before: Path, after: Path, rounds: int, calls: int) -> dict[str, float]:
    """The median over rounds of each checkout's median `POST /v1/authorize`, in seconds."""
    medians: dict[str, list[float]] = {"before": [], "after": []}
    for round_number in range(rounds):
        order = [("before", before), ("after", after)]
        for label, root in order if round_number % 2 == 0 else order[::-1]:
            output = subprocess.run(
                [sys.executable, "-c", REQUEST_ROUND, str(root), str(calls)],
                cwd=root, capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]
            answer = json.loads(output)
            assert answer["module"].startswith(str(root)), answer  # the checkout meant, not another one
            medians[label].append(answer["median"])
    return {label: statistics.median(values) for label, values in medians.items()}


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--before", type=Path, required=True, help="a checkout of the code to compare against")
    arguments.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent,
                           help="the checkout with strict input (default: this one)")
    arguments.add_argument("--rounds", type=int, default=5)
    arguments.add_argument("--calls", type=int, default=3_000, help="requests per round")
    options = arguments.parse_args()
    print("body reader, median per call (alternating rounds):")
    for name, figures in measure_reader(options.rounds).items():
        old, new = figures["json.loads"], figures["json_body.parse"]
        print(f"  {name:>15}: json.loads {old * 1e6:9.1f} µs, json_body.parse {new * 1e6:9.1f} µs, ×{new / old:.2f}")
    in_one = measure_readers_in_requests(options.rounds, options.calls)
    print(f"POST /v1/authorize in one process, the body reader swapped in alternating rounds: before strict input "
          f"{in_one['before'] * 1e6:.1f} µs, json_body {in_one['json_body'] * 1e6:.1f} µs, "
          f"×{in_one['json_body'] / in_one['before']:.3f}")
    requests = measure_requests(options.before.resolve(), options.after.resolve(), options.rounds, options.calls)
    print(f"POST /v1/authorize through the Flask test client, median of {options.rounds} rounds' medians:")
    print(f"  before ({options.before}): {requests['before'] * 1e6:.1f} µs; after ({options.after}): "
          f"{requests['after'] * 1e6:.1f} µs; ×{requests['after'] / requests['before']:.3f}")


if __name__ == "__main__":
    main()
