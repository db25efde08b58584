"""The decision log's cost, measured (bench/DECISION_LOG.md):

    .venv/bin/python -m bench.decision_log            # both parts
    .venv/bin/python -m bench.decision_log http       # (a) only
    .venv/bin/python -m bench.decision_log postgres   # (b) only
    .venv/bin/python -m bench.decision_log cpu        # (c) only
    BENCH_BEFORE=/tmp/before .venv/bin/python -m bench.decision_log http  # and a server from that tree, log on

(a) `/v1/authorize` throughput with the decision log on (`all`, the default) and off,
    against SPEC's floor (a trivial Flask endpoint on gunicorn, 2 sync workers),
    side by side with wrk in one run, rounds rotated; and a batch of 1,000 checks with
    the log on (and off), timed from Python on a kept-alive connection.
(b) On PostgreSQL, 1,000,000 decisions spread over 30 days (COPY into the day
    partitions), then GET /v1/decisions's query by actor and by account (the
    storage's `page`, limit 100), timed; and the table's size per row.
(c) CPU time of recording 1,000 checks on the request path, and of writing them (the writer thread's
    work, which shares the worker's CPU with its requests), on SQLite and PostgreSQL.
Every server, file and database it makes is removed, whatever happens.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import requests

from bench import datasets, servers, wrk
from bench.datasets import SMALL
from bench.server import HEADERS, KEY
from bench.workload import authorize_lines, batch_body, decision_pool
from models.database import Database
from models.decision_log import DecisionStorage, total_size
from service.core.decision_log import Asker, DecisionLog
from tests.servers import served

PROJECT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN = os.environ.get("AUTHZ_BENCH_POSTGRES", "postgresql://127.0.0.1:5432/postgres")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
BATCH_CALLS = 30
BEFORES = [tree for tree in os.environ.get("BENCH_BEFORE", "").split(",") if tree]  # trees of the service to run
# beside, log on (made with `git archive COMMIT | tar -x -C DIR`)
BEFORE = BEFORES[0] if BEFORES else None
ROWS = int(os.environ.get("BENCH_DECISION_ROWS", "1000000"))
DAYS = 30
ACTORS = 20_000
ACCOUNTS = 5_000


def say(message: str) -> None:
    print(f"[decision-log {time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextmanager
def floor_server(directory: Path) -> Iterator[str]:
    """SPEC's floor (`bench.servers.FLOOR`: `bench/floor_app.py` on gunicorn, 2 sync workers); yields its base URL."""
    with servers.start(servers.FLOOR, "", directory) as running:
        yield running.base


def batch_ms(base: str, body: bytes, calls: int) -> list[float]:
    session = requests.Session()
    timings = []
    for _ in range(calls + 3):
        started = time.perf_counter()
        answer = session.post(base + "/v1/authorize/batch", data=body, headers=HEADERS, timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200 or len(answer.json()["results"]) != 1000:
            raise RuntimeError(f"batch answered {answer.status_code}: {answer.text[:300]}")
        timings.append(elapsed)
    return timings[3:]  # the first calls warm the workers' caches


def written(base: str) -> float:
    text = requests.get(base + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("authz_decision_log_written_total"))


def dropped(base: str) -> float:
    text = requests.get(base + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("authz_decision_log_dropped_total{"))


def http_part(work: Path, backend: str) -> dict:
    data = datasets.generate(SMALL)
    with ExitStack() as stack:
        if backend == "postgresql":
            url = stack.enter_context(datasets.postgres_database(POSTGRES_ADMIN, "dlog"))
        else:
            url = datasets.sqlite_url(work, SMALL)
        datasets.load(url, data)
        pool = decision_pool(data)
        bodies = work / "authorize.jsonl"
        bodies.write_text(authorize_lines(pool))
        batch = batch_body(pool)
        metrics_on, metrics_off = work / "metrics-on", work / "metrics-off"
        metrics_on.mkdir()
        metrics_off.mkdir()
        on = stack.enter_context(served(url, 2, env={"AUTHZ_DECISION_LOG": "all", "PROMETHEUS_MULTIPROC_DIR": str(metrics_on)},
                                        log_path=work / "server-on.log"))
        off = stack.enter_context(served(url, 2, env={"AUTHZ_DECISION_LOG": "off", "PROMETHEUS_MULTIPROC_DIR": str(metrics_off)},
                                         log_path=work / "server-off.log"))
        floor = stack.enter_context(floor_server(work))
        runs = {
            "floor": lambda seconds: wrk.run(floor + "/", seconds),
            "log on": lambda seconds: wrk.run(on.base + "/v1/authorize", seconds, bodies, KEY),
            "log off": lambda seconds: wrk.run(off.base + "/v1/authorize", seconds, bodies, KEY),
            "healthz": lambda seconds: wrk.run(on.base + "/healthz", seconds),
        }
        befores = {}
        for tree in BEFORES:  # the same service from other trees (the code before a change), log on, beside the others
            name = f"log on, {Path(tree).name}"
            metrics = work / f"metrics-{Path(tree).name}"
            metrics.mkdir()
            befores[name] = stack.enter_context(served(url, 2, env={
                "AUTHZ_DECISION_LOG": "all", "PROMETHEUS_MULTIPROC_DIR": str(metrics), "PYTHONPATH": tree,
            }, log_path=work / f"server-{Path(tree).name}.log", cwd=Path(tree)))
            runs[name] = lambda seconds, base=befores[name].base: wrk.run(base + "/v1/authorize", seconds, bodies, KEY)
        for drive in runs.values():
            drive(2)
        found: dict[str, list] = {name: [] for name in runs}
        names = list(runs)
        for round_number in range(ROUNDS):
            for name in names[round_number % len(names):] + names[: round_number % len(names)]:
                found[name].append(runs[name](SECONDS))
            say(f"{backend} round {round_number + 1}/{ROUNDS}: " + ", ".join(
                f"{name} {found[name][-1].per_second:.0f}/s p99 {found[name][-1].p99_ms:.1f} ms" for name in names))
        batch_on = batch_ms(on.base, batch, BATCH_CALLS)
        batch_off = batch_ms(off.base, batch, BATCH_CALLS)
        batch_befores = {name: batch_ms(server.base, batch, BATCH_CALLS) for name, server in befores.items()}
        time.sleep(1.5)  # the writers' last flush
        per_second = {name: [run.per_second for run in runs_] for name, runs_ in found.items()}
        result = {
            "backend": backend,
            "rounds": ROUNDS,
            "seconds": SECONDS,
            "per_second_median": {name: statistics.median(values) for name, values in per_second.items()},
            "on_to_floor": statistics.median(a / f for a, f in zip(per_second["log on"], per_second["floor"], strict=True)),
            "off_to_floor": statistics.median(
                a / f for a, f in zip(per_second["log off"], per_second["floor"], strict=True)),
            "on_to_off": statistics.median(a / f for a, f in zip(per_second["log on"], per_second["log off"], strict=True)),
            "p99_ms_median": {name: statistics.median(run.p99_ms for run in runs_) for name, runs_ in found.items()},
            "p99_to_healthz": {
                name: statistics.median(a.p99_ms / h.p99_ms for a, h in zip(runs_, found["healthz"], strict=True))
                for name, runs_ in found.items() if name != "healthz"
            },
            "to_floor": {
                name: statistics.median(a.per_second / f.per_second for a, f in zip(runs_, found["floor"], strict=True))
                for name, runs_ in found.items() if name not in ("healthz", "floor")
            },
            "batch_1000_ms_median": {
                "log on": statistics.median(batch_on), "log off": statistics.median(batch_off), **{name: statistics.median(timings) for name, timings in batch_befores.items()},
            },
            "batch_1000_ms_p90": {"log on": sorted(batch_on)[int(0.9 * len(batch_on))],
                                  "log off": sorted(batch_off)[int(0.9 * len(batch_off))]},
            "recorded": written(on.base),
            "dropped": dropped(on.base),
            "wrk": " ".join(wrk.command(on.base + "/v1/authorize", SECONDS, bodies, "KEY")),
        }
        say(json.dumps(result))
        return result


def postgres_part() -> dict:
    with datasets.postgres_database(POSTGRES_ADMIN, "dlogq") as url:
        db = Database(url)
        db.migrate()
        storage = DecisionStorage(db)
        end = datetime.now(UTC).replace(microsecond=0)
        start = end - timedelta(days=DAYS)
        storage.ensure_partitions({(start + timedelta(days=day)).date() for day in range(DAYS + 1)})
        rng = random.Random(7)
        actions = ("read", "view_workspace", "edit_workspace", "view_subscription", "manage_subscription", "view")
        started = time.perf_counter()
        libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
        step = (end - start) / ROWS
        with psycopg.connect(libpq) as connection, connection.cursor() as cursor:
            columns = "time, request_id, api_key, endpoint, actor, action, resource, account, allowed, code, revision, policy"
            with cursor.copy(f"COPY decisions ({columns}) FROM STDIN") as copy:
                for number in range(ROWS):
                    actor = f"u_{rng.randrange(ACTORS):06d}"
                    account = f"acc_{rng.randrange(ACCOUNTS):06d}"
                    copy.write_row((
                        start + step * number, f"{number:032x}", "billing-service", "/v1/authorize", actor,
                        actions[number % len(actions)], f'{{"type":"Account","id":"{account}"}}', account,
                        number % 3 != 0, None, 1000 + number // 1000, "8578a57a1137488a7db4f18b8442d66de6db221ee1a4b18121082273f9e1cc09",
                    ))
        load_seconds = time.perf_counter() - started
        with psycopg.connect(libpq, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE decisions")
        say(f"{ROWS:,} decisions loaded over {DAYS} days in {load_seconds:.1f} s")
        timings: dict[str, list[float]] = {"actor": [], "account": [], "actor, last day": [], "account, denied": []}
        day_ago = end - timedelta(days=1)
        for sample in range(60):
            actor, account = f"u_{rng.randrange(ACTORS):06d}", f"acc_{rng.randrange(ACCOUNTS):06d}"
            for name, filters in (
                ("actor", {"actor": actor}),
                ("account", {"account": account}),
                ("actor, last day", {"actor": actor, "since": day_ago}),
                ("account, denied", {"account": account, "allowed": False}),
            ):
                began = time.perf_counter()
                rows = storage.page(**filters, limit=100)
                elapsed = (time.perf_counter() - began) * 1000
                if sample >= 5:  # the first queries warm the connection pool and the plan cache
                    timings[name].append(elapsed)
                if name == "actor" and sample == 5 and not rows:
                    raise RuntimeError("the actor query found nothing: the load went wrong")
        # The same query's next page, from the middle of a month of one actor's decisions.
        first = storage.page(actor=actor, limit=25)
        began = time.perf_counter()
        storage.page(actor=actor, after=first[-1]["id"], limit=25)
        next_page_ms = (time.perf_counter() - began) * 1000
        with db.engine.connect() as connection:
            size = int(total_size(connection))
        with psycopg.connect(libpq) as connection:
            heap, indexes = connection.execute(
                "SELECT sum(pg_table_size(inhrelid)), sum(pg_indexes_size(inhrelid)) FROM pg_inherits "
                "WHERE inhparent = 'decisions'::regclass").fetchone()
            plan = "\n".join(row[0] for row in connection.execute(
                "EXPLAIN ANALYZE SELECT * FROM decisions WHERE actor = %s AND id > 0 ORDER BY id LIMIT 100", (actor,)))
        db.dispose()
        month_rows = 1000 * 86400 * 30
        result = {
            "rows": ROWS,
            "days": DAYS,
            "load_seconds": load_seconds,
            "query_ms_median": {name: statistics.median(values) for name, values in timings.items()},
            "query_ms_max": {name: max(values) for name, values in timings.items()},
            "next_page_ms": next_page_ms,
            "bytes_total": size,
            "bytes_per_row": size / ROWS,
            "table_bytes_per_row": int(heap) / ROWS,
            "index_bytes_per_row": int(indexes) / ROWS,
            "month_at_1000_per_second_gb": size / ROWS * month_rows / 1e9,
            "plan": plan,
        }
        say(json.dumps({k: v for k, v in result.items() if k != "plan"}))
        return result


def cpu_part(work: Path) -> dict:
    """CPU time (process_time: what the other engineers' load on the machine distorts least) of recording
    1,000 batch checks on the request path, and of the writer turning them into rows and writing them."""
    checks = [
        {"actor": {"type": "User", "id": f"u_{i}"}, "action": "view",
         "resource": {"type": "PaymentMethod", "id": f"pm_{i}", "account": f"acc_{i % 50}", "owner": f"u_{i % 7}"}}
        for i in range(1000)
    ]
    outcomes = [i % 2 == 0 for i in range(1000)]
    asker = Asker("0123456789abcdef0123456789abcdef", "billing-service", "/v1/authorize/batch")
    result = {}
    with ExitStack() as stack:
        urls = {"sqlite": f"sqlite:///{work / 'cpu.sqlite3'}",
                "postgresql": stack.enter_context(datasets.postgres_database(POSTGRES_ADMIN, "dlogcpu"))}
        for backend, url in urls.items():
            db = Database(url)
            db.migrate()
            log = DecisionLog(db)
            log._thread_pid = os.getpid()  # noqa: SLF001 - no writer thread: this process writes, and is timed
            record, write = [], []
            for _ in range(20):
                began = time.process_time()
                log.decisions(asker, checks, outcomes, revision=5, policy="a" * 64)
                recorded = time.process_time()
                log.flush()
                record.append((recorded - began) * 1000)
                write.append((time.process_time() - recorded) * 1000)
            log.close()
            db.dispose()
            result[backend] = {"record 1,000 ms": statistics.median(record), "write 1,000 ms": statistics.median(write)}
    say(json.dumps(result))
    return result


def gil_part(work: Path) -> dict:
    """Which threads of a worker hold the interpreter lock under wrk (py-spy record --gil, SQLite, log on):
    the writer's share of the samples, for this tree and, with BENCH_BEFORE, the tree before."""
    data = datasets.generate(SMALL)
    url = datasets.sqlite_url(work, SMALL)
    datasets.load(url, data)
    bodies = work / "authorize.jsonl"
    bodies.write_text(authorize_lines(decision_pool(data)))
    py_spy = Path(sys.executable).with_name("py-spy")
    result = {}
    for name, tree in (("after", None), ("before", BEFORE)):
        if name == "before" and not tree:
            continue
        env = {"AUTHZ_DECISION_LOG": "all", **({"PYTHONPATH": tree} if tree else {})}
        with served(url, 2, env=env, log_path=work / f"gil-{name}.log", cwd=Path(tree) if tree else None) as server:
            wrk.run(server.base + "/v1/authorize", 2, bodies, KEY)
            out = work / f"gil-{name}.txt"
            spy = subprocess.Popen([str(py_spy), "record", "--gil", "--nonblocking", "-r", "250", "-d", "8", "-f", "raw",
                                    "--threads", "-o", str(out), "--pid", str(server.worker_pids()[0])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            run = wrk.run(server.base + "/v1/authorize", 10, bodies, KEY)
            spy.wait(timeout=60)
        samples: dict[str, int] = {}
        for line in out.read_text().splitlines():
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():
                continue
            if "DecisionLog._run (" not in stack:
                thread = "requests and the rest"
            elif "DecisionLog.flush (" in stack:
                thread = "decision-log writer, writing"
            else:
                thread = "decision-log writer, other (taking the batch, waking)"
            samples[thread] = samples.get(thread, 0) + int(count)
        total = sum(samples.values()) or 1
        result[name] = {"gil_samples_share": {k: v / total for k, v in samples.items()}, "samples": total,
                        "per_second": run.per_second, "p99_ms": run.p99_ms}
        say(f"gil {name}: {json.dumps(result[name])}")
    return result


def main(argv: list[str]) -> int:
    parts = argv or ["http", "postgres", "cpu"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="authz-bench-dlog-") as directory:
        work = Path(directory)
        if "http" in parts:
            for backend in os.environ.get("BENCH_BACKENDS", "sqlite,postgresql").split(","):
                backend_work = work / backend
                backend_work.mkdir()
                results[f"http {backend}"] = http_part(backend_work, backend)
        if "postgres" in parts:
            results["postgres query"] = postgres_part()
        if "gil" in parts:
            results["gil"] = gil_part(work)
        if "cpu" in parts:
            results["cpu"] = cpu_part(work)
    out = PROJECT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "decision_log.json").write_text(json.dumps(results, indent=2))
    say(f"written to {out / 'decision_log.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
