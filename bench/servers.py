"""Which production server: the candidates side by side in one run, on throughput, p99 and slow clients.

    .venv/bin/python -m bench.servers              # about 5 minutes; prints the table, writes bench/out/servers.*
    SERVERS_ROUNDS=2 .venv/bin/python -m bench.servers   # shorter
    .venv/bin/python -m bench.servers writes       # membership changes/s, 4 workers, on PostgreSQL (about 2 minutes)
    .venv/bin/python -m bench.servers decision-log # /v1/authorize with the decision log on and off (about 2 minutes)

Every candidate serves the same app (`service.wsgi:app`) on the same SQLite
store of 100,000 accounts, all at once, each on its own port; the floor of
SPEC "Running it" (`bench/floor_app.py`: a trivial Flask endpoint on gunicorn
with 2 sync workers) runs beside them. In each round, wrk (2 threads, 16
connections, keep-alive) drives each candidate's `/v1/authorize` and
`/healthz` and the floor, in an order rotated from round to round, so that a
ratio to the floor is taken within one round. Then, for each candidate in
turn, the slow-client test: 40 idle connections (connected, nothing sent) and
40 trickling ones (a request line, then one header byte a second) are held
open while `/healthz` and `/v1/authorize` are probed on fresh connections.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench import datasets, machine, writes, wrk
from bench.datasets import LARGE
from bench.workload import authorize_lines, decision_pool
from tests.servers import free_port
from tests.slow_clients import SlowClients, probe
from tests.support import TEST_KEY

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GUNICORN_CONF = str(PROJECT / "bench" / "gunicorn_conf.py")
IDLE, TRICKLING = 40, 40
PROBES = 10  # of each endpoint, per candidate
PROBE_TIMEOUT = 1.0  # seconds: a probe not answered by then counts as this long
ANSWERED_IN = 0.100  # the bound of issue 11


@dataclass(frozen=True)
class Candidate:
    label: str
    argv: Callable[[int], list[str]]  # port -> command line
    env: dict = field(default_factory=dict)
    ready_path: str = "/readyz"


def gunicorn(extra: list[str], app: str = "service.wsgi:app") -> Callable[[int], list[str]]:
    return lambda port: [
        str(BIN / "python"), "-m", "gunicorn", "--config", GUNICORN_CONF, "--bind", f"127.0.0.1:{port}", *extra, app,
    ]


def granian(workers: int, threads: int) -> Callable[[int], list[str]]:
    """granian's own command line on the app module (each worker builds the app after the fork)."""
    return lambda port: [
        str(BIN / "python"), "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--blocking-threads", str(threads), "--no-ws", "--log-level", "warning",
        "service.wsgi:app",
    ]


def authz_serve(workers: int, threads: int) -> Candidate:
    """The service as `make serve` starts it."""
    return Candidate(
        f"authz serve (granian {workers}w x {threads}t)",
        lambda port: [str(BIN / "authz"), "serve", "--port", str(port)],
        {"AUTHZ_WORKERS": str(workers), "AUTHZ_THREADS": str(threads)},
    )


GUNICORN_SYNC = Candidate("gunicorn sync 2w", gunicorn(["--workers", "2"]))  # what `authz serve` ran before granian


def candidates() -> list[Candidate]:
    found = [
        GUNICORN_SYNC,
        Candidate("gunicorn gthread 2w x 8t", gunicorn(["--workers", "2", "--worker-class", "gthread", "--threads", "8"])),
    ]
    if (PROJECT / "service" / "serving.py").exists():
        found.append(authz_serve(2, 2))
    else:
        found.append(Candidate("granian 2w x 2t", granian(2, 2)))
    found.append(Candidate("granian 2w x 4t", granian(2, 4)))
    if importlib.util.find_spec("waitress") is not None:  # optional: `pip install waitress`
        found.append(Candidate("waitress 1 process x 8t", lambda port: [
            str(BIN / "waitress-serve"), "--listen", f"127.0.0.1:{port}", "--threads", "8", "service.wsgi:app"]))
    return found


# SPEC's floor, the one every bench compares with: gunicorn's defaults (sync workers), not the service's
# gunicorn settings, whose post_fork would build the whole service in each floor worker.
FLOOR = Candidate(
    "floor: Flask jsonify on gunicorn sync 2w",
    lambda port: [str(BIN / "python"), "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
                  "--bind", f"127.0.0.1:{port}", "bench.floor_app:app"],
    ready_path="/",
)


@dataclass
class Running:
    candidate: Candidate
    base: str
    port: int
    process: subprocess.Popen


@contextmanager
def start(candidate: Candidate, database_url: str, work: Path) -> Iterator[Running]:
    port = free_port()
    metrics = Path(tempfile.mkdtemp(prefix="metrics-", dir=work))
    env = {
        **os.environ, "DATABASE_URL": database_url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "PORT": str(port),
        "AUTHZ_HOST": "127.0.0.1", "AUTHZ_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics), **candidate.env,
    }
    log = (work / f"{candidate.label.replace(' ', '_').replace(':', '')}.log").open("wb")
    process = subprocess.Popen(candidate.argv(port), cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{candidate.label} exited with {process.returncode}: see {log.name}")
            try:
                if requests.get(base + candidate.ready_path, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{candidate.label} was not ready in 120 s")
            time.sleep(0.2)
        yield Running(candidate, base, port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def slow_client_test(running: Running, authorize_body: bytes, probes: int = PROBES, timeout: float = PROBE_TIMEOUT) -> dict:
    with SlowClients(running.port, IDLE, TRICKLING) as slow:
        healthz, authorize = [], []
        for _ in range(probes):
            healthz.append(probe(running.base, "/healthz", None, timeout))
            authorize.append(probe(running.base, "/v1/authorize", authorize_body, timeout))
        still_open = slow.still_open()
    return {
        "healthz median ms": statistics.median(healthz) * 1e3,
        "authorize median ms": statistics.median(authorize) * 1e3,
        "healthz within 100 ms": sum(t < ANSWERED_IN for t in healthz),
        "authorize within 100 ms": sum(t < ANSWERED_IN for t in authorize),
        "probes": probes,
        "slow connections still open": still_open,
        "healthz samples ms": [t * 1e3 for t in healthz],
        "authorize samples ms": [t * 1e3 for t in authorize],
    }


def say(message: str) -> None:
    print(f"[servers {time.strftime('%H:%M:%S')}] {message}", flush=True)


def measure(rounds: int, seconds: float, work: Path) -> dict:
    neighbours = machine.Neighbours().start()
    results: dict = {"machine": machine.describe(None), "rounds": rounds, "wrk seconds": seconds}
    try:
        neighbours.mark("building the store")
        data = datasets.generate(LARGE)
        url = datasets.sqlite_url(work, LARGE)
        datasets.load(url, data)
        bodies = work / "authorize.jsonl"
        bodies.write_text(authorize_lines(decision_pool(data)))
        one_body = bodies.read_text().splitlines()[0].encode()
        with ExitStack() as stack:
            floor = stack.enter_context(start(FLOOR, url, work))
            running = [stack.enter_context(start(candidate, url, work)) for candidate in candidates()]
            say("started: " + ", ".join(r.candidate.label for r in running))
            drives: dict[str, Callable[[float], wrk.WrkRun]] = {"floor": lambda s: wrk.run(floor.base + "/", s)}
            for server in running:
                label = server.candidate.label
                drives[f"{label} | authorize"] = lambda s, b=server.base: wrk.run(b + "/v1/authorize", s, bodies, TEST_KEY)
                drives[f"{label} | healthz"] = lambda s, b=server.base: wrk.run(b + "/healthz", s)
            neighbours.mark("wrk")
            for drive in drives.values():  # warm-up: every worker caches the pool's facts, nothing recorded
                drive(2)
            found: dict[str, list[dict]] = {name: [] for name in drives}
            names = list(drives)
            for number in range(rounds):
                shift = (number * 3) % len(names)
                for name in names[shift:] + names[:shift]:
                    found[name].append(drives[name](seconds).as_dict())
                say(f"round {number + 1}/{rounds}: " + ", ".join(
                    f"{name} {found[name][-1]['per_second']:.0f}/s p99 {found[name][-1]['p99_ms']:.1f}" for name in names))
            results["wrk"] = found
            neighbours.mark("slow clients")
            results["slow clients"] = {}
            for server in running:
                results["slow clients"][server.candidate.label] = outcome = slow_client_test(server, one_body)
                say(f"slow clients, {server.candidate.label}: healthz median {outcome['healthz median ms']:.1f} ms "
                    f"({outcome['healthz within 100 ms']}/{PROBES} within 100 ms), authorize median "
                    f"{outcome['authorize median ms']:.1f} ms ({outcome['authorize within 100 ms']}/{PROBES})")
                time.sleep(1)
            results["candidates"] = [server.candidate.label for server in running]
    finally:
        neighbours.stop()
    results["neighbours"] = neighbours.phases()
    return results


def table(results: dict) -> str:
    """The side-by-side table: medians over the rounds, ratios taken round by round."""
    wrk_runs = results["wrk"]
    floor = wrk_runs["floor"]
    sync = wrk_runs["gunicorn sync 2w | authorize"]

    def median_ratio(runs: list[dict], against: list[dict], key: str) -> float:
        return statistics.median(a[key] / b[key] for a, b in zip(runs, against, strict=True))

    lines = [
        "| server | `/v1/authorize` /s | ÷ floor | ÷ gunicorn sync | p99 ms | p99 ÷ floor p99 | p99 ÷ own `/healthz` p99 "
        "| `/healthz` /s | `/healthz` p99 ms | slow clients: `/healthz` median ms (≤100 ms) | `/v1/authorize` median ms (≤100 ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in results["candidates"]:
        authorize, healthz = wrk_runs[f"{label} | authorize"], wrk_runs[f"{label} | healthz"]
        slow = results["slow clients"][label]
        lines.append(
            f"| {label} | {statistics.median(r['per_second'] for r in authorize):,.0f} "
            f"| {median_ratio(authorize, floor, 'per_second'):.2f} | {median_ratio(authorize, sync, 'per_second'):.2f} "
            f"| {statistics.median(r['p99_ms'] for r in authorize):.1f} | {median_ratio(authorize, floor, 'p99_ms'):.2f} "
            f"| {median_ratio(authorize, healthz, 'p99_ms'):.2f} "
            f"| {statistics.median(r['per_second'] for r in healthz):,.0f} | {statistics.median(r['p99_ms'] for r in healthz):.1f} "
            f"| {slow['healthz median ms']:.0f} ({slow['healthz within 100 ms']}/{slow['probes']}) "
            f"| {slow['authorize median ms']:.0f} ({slow['authorize within 100 ms']}/{slow['probes']}) |"
        )
    lines.append(
        f"| {FLOOR.label} | {statistics.median(r['per_second'] for r in floor):,.0f} | 1 | | "
        f"{statistics.median(r['p99_ms'] for r in floor):.1f} | 1 | | | | | |"
    )
    shares = ", ".join(f"{p['phase']} {100 * p['neighbours_share']:.0f}%" for p in results["neighbours"])
    lines += ["", f"{results['rounds']} rounds of {results['wrk seconds']:g} s per figure; others' CPU meanwhile "
              f"(share of all cores): {shares}; load average at start {results['machine']['load average at start']}; "
              f"commit {results['machine']['commit']}."]
    return "\n".join(lines) + "\n"


def writes_side_by_side(rounds: int, seconds: float, work: Path) -> str:
    """`bench/writes.py`'s load (8 connections) on 4 workers: gunicorn sync against `authz serve`, round by round."""
    from bench.run import POSTGRES_ADMIN

    data = datasets.generate(LARGE)
    lines = ["| round | " + " | ".join(["gunicorn sync 4w", "authz serve (granian 4w x 2t)", "granian 4w x 1t"]) + " |",
             "|---|---|---|---|"]
    with ExitStack() as stack:
        url = stack.enter_context(datasets.postgres_database(POSTGRES_ADMIN, "100k"))
        datasets.load(url, data)
        contenders = [
            Candidate("gunicorn sync 4w", gunicorn(["--workers", "4"])),
            authz_serve(4, 2),
            Candidate("granian 4w x 1t", granian(4, 1)),
        ]
        running = [stack.enter_context(start(candidate, url, work)) for candidate in contenders]
        for server in running:
            writes.drive(server.base, data, 2, 8, 0)
        for number in range(1, rounds + 1):
            found = [writes.drive(server.base, data, seconds, 8, number) for server in running]
            lines.append(f"| {number} | " + " | ".join(f"{w.per_second:.0f}/s, p99 {w.p99_ms:.0f} ms" for w in found) + " |")
            say(lines[-1])
    return "\n".join(lines) + "\n"


def decision_log_side_by_side(rounds: int, seconds: float, work: Path) -> str:
    """`authz serve` (2 workers x 2 threads) with the decision log on (the default) and off, and on with 4 threads."""
    data = datasets.generate(LARGE)
    url = datasets.sqlite_url(work, LARGE)
    datasets.load(url, data)
    bodies = work / "authorize.jsonl"
    bodies.write_text(authorize_lines(decision_pool(data)))
    default = authz_serve(2, 2)
    contenders = [
        default,
        Candidate("the same, AUTHZ_DECISION_LOG=off", default.argv, {**default.env, "AUTHZ_DECISION_LOG": "off"}),
        authz_serve(2, 4),
    ]
    lines = ["| server | `/v1/authorize` /s, round by round | p99 ms, round by round |", "|---|---|---|"]
    with ExitStack() as stack:
        running = [stack.enter_context(start(candidate, url, work)) for candidate in contenders]
        for server in running:
            wrk.run(server.base + "/v1/authorize", 2, bodies, TEST_KEY)
        found: dict[str, list[wrk.WrkRun]] = {server.candidate.label: [] for server in running}
        for _ in range(rounds):
            for server in running:
                found[server.candidate.label].append(wrk.run(server.base + "/v1/authorize", seconds, bodies, TEST_KEY))
    for label, runs in found.items():
        lines.append(f"| {label} | {', '.join(f'{run.per_second:,.0f}' for run in runs)} "
                     f"| {', '.join(f'{run.p99_ms:.0f}' for run in runs)} |")
    return "\n".join(lines) + "\n"


@contextmanager
def _scratch() -> Iterator[tuple[Path, Path]]:
    """bench/out (kept) and a work folder inside it for the servers' logs and metrics (removed)."""
    out = PROJECT / "bench" / "out"
    out.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="servers-", dir=out))
    try:
        yield out, work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    if sys.argv[1:] == ["decision-log"]:
        with _scratch() as (_out, work):
            rendered = decision_log_side_by_side(int(os.environ.get("SERVERS_ROUNDS", "4")), 3.0, work)
        print(rendered)
        return 0
    if sys.argv[1:] == ["writes"]:
        with _scratch() as (out, work):
            rendered = writes_side_by_side(int(os.environ.get("SERVERS_ROUNDS", "5")), 8.0, work)
        (out / "servers-writes.md").write_text(rendered)
        print(rendered)
        return 0
    if shutil.which("wrk") is None:
        print("wrk is missing: `apt-get install -y wrk`", file=sys.stderr)
        return 2
    rounds = int(os.environ.get("SERVERS_ROUNDS", "5"))
    seconds = float(os.environ.get("SERVERS_SECONDS", "3"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with _scratch() as (out, work):
        results = measure(rounds, seconds, work)
    (out / "servers.json").write_text(json.dumps(results, indent=2, default=str))
    rendered = table(results)
    (out / "servers.md").write_text(rendered)
    print(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
