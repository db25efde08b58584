"""`make bench`: every figure of the performance issue, measured in one run, written to bench/RESULTS.md.

    .venv/bin/python -m bench.run            # the full run, 5-10 minutes
    BENCH_QUICK=1 .venv/bin/python -m bench.run   # a short smoke run, written to bench/out/RESULTS-quick.md

It builds the stores (SQLite files and, when PostgreSQL is reachable,
`authz_bench_*` databases), measures decisions in process, starts the real
server (`authz serve`: granian) on them, drives it with `wrk` against the
`/healthz` floor, and on SQLite against the same app on gunicorn's sync workers
and a trivial Flask endpoint on gunicorn, in the same run, and removes every server, file
and database it made, whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import datasets, http_calls, in_process, machine, report, writes, wrk
from bench import servers as servers_bench
from bench.datasets import LARGE, SMALL, DataSet
from bench.in_process import WrongAnswer
from bench.server import KEY, Server, serve, worker_rss_mb
from bench.stats import Figure
from bench.workload import LIST_REQUEST, authorize_lines, batch_body, decision_pool, every_membership_batches
from service.core.runtime import Runtime

BENCH_DIR = Path(__file__).resolve().parent
POSTGRES_ADMIN = os.environ.get("AUTHZ_BENCH_POSTGRES", os.environ.get("AUTHZ_TEST_POSTGRES", "postgresql://127.0.0.1:5432/postgres"))


@dataclass(frozen=True)
class Plan:
    """How long and how often each measurement runs."""

    in_process_rounds: int = 5
    warm_calls: int = 5_000
    cold_calls: int = 500
    in_process_list_calls: int = 10
    wrk_rounds: int = 8
    postgres_wrk_rounds: int = 4
    wrk_seconds: float = 3.0
    http_rounds: int = 5
    http_calls: int = 10
    write_rounds: int = 3
    write_seconds: float = 10.0
    write_connections: int = 8
    http_workers: int = 2
    write_workers: int = 4
    sweep_every_membership: bool = True


FULL = Plan()
QUICK = Plan(
    in_process_rounds=2, warm_calls=1_000, cold_calls=100, in_process_list_calls=3, wrk_rounds=2,
    postgres_wrk_rounds=1, wrk_seconds=2.0, http_rounds=2, http_calls=3, write_rounds=1, write_seconds=3.0,
    sweep_every_membership=False,
)


class Bench:
    """One run: the stores it built, the figures it measured, the details behind them."""

    def __init__(self, plan: Plan, work: Path, stack: ExitStack) -> None:
        self.plan = plan
        self.work = work
        self.stack = stack  # what lives as long as the run: the PostgreSQL databases
        self.results: dict = {"plan": plan.__dict__, "figures": {}, "details": {}}
        self.data: dict[str, DataSet] = {}
        self.urls: dict[str, str] = {}  # "sqlite-100k", "postgresql-1k", ...

    # -- helpers --------------------------------------------------------------

    def figure(self, name: str, value: Figure) -> Figure:
        self.results["figures"][name] = value.as_dict()
        return value

    def detail(self, name: str, value: object) -> None:
        self.results["details"][name] = value

    def say(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    # -- the stores -------------------------------------------------------------

    def build(self, with_postgres: bool) -> None:
        for shape in (SMALL, LARGE):
            started = time.perf_counter()
            data = self.data[shape.label] = datasets.generate(shape)
            url = self.urls[f"sqlite-{shape.label}"] = datasets.sqlite_url(self.work, shape)
            datasets.load(url, data)
            timings = {"sqlite": time.perf_counter() - started}
            if with_postgres:
                started = time.perf_counter()
                url = self.stack.enter_context(datasets.postgres_database(POSTGRES_ADMIN, shape.label))
                self.urls[f"postgresql-{shape.label}"] = url
                datasets.load(url, data)
                timings["postgresql"] = time.perf_counter() - started
            self.say(f"store of {shape.accounts:,} accounts built: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
            self.detail(f"build {shape.label} seconds", timings)

    def server(self, servers: ExitStack, store: str, workers: int) -> Server:
        """A real server on one of the stores, stopped when `servers` closes."""
        label = f"{store}-{workers}w-{len(list(self.work.glob('server-*.log')))}"
        return servers.enter_context(serve(self.urls[store], workers, self.work, label))

    # -- measurements -----------------------------------------------------------

    def in_process(self) -> None:
        subjects = []
        for store in self.urls:
            runtime = Runtime.build({"DATABASE_URL": self.urls[store], "MIGRATE": False})
            subjects.append(in_process.Subject(store, runtime, decision_pool(self.data[store.split("-")[1]])))
        try:
            p = self.plan
            in_process.measure(subjects, p.in_process_rounds, p.warm_calls, p.cold_calls, p.in_process_list_calls)
        finally:
            for subject in subjects:
                subject.runtime.close()
        for subject in subjects:
            for kind in ("warm", "cold", "list"):
                self.figure(f"in-process {kind} {subject.label}", Figure.of_rounds(subject.rounds[kind]))
                self.figure(f"in-process {kind} {subject.label} samples", Figure.of_samples(subject.samples[kind]))
            warm = median_text(subject.rounds["warm"], 1e6)
            self.say(f"in process, {subject.label}: warm {warm} µs, cold {median_text(subject.rounds['cold'], 1e6)} µs")
        by_label = {subject.label: subject for subject in subjects}
        for backend in ("sqlite", "postgresql"):
            if f"{backend}-100k" not in by_label:
                continue
            large, small = by_label[f"{backend}-100k"], by_label[f"{backend}-1k"]
            for kind in ("warm", "cold", "list"):
                self.figure(f"in-process {kind} {backend} flatness", Figure.of_rounds(
                    [a / b for a, b in zip(large.rounds[kind], small.rounds[kind], strict=True)]))

    def decisions_over_http(self, backend: str, rounds: int) -> None:
        """wrk: the /healthz floor and /v1/authorize on the large store, and /v1/authorize on the small one.

        On SQLite, in the same rounds: the same app on gunicorn's sync workers (the server `authz serve`
        ran before granian) and SPEC's floor, a trivial Flask endpoint on gunicorn with 2 sync workers.
        """
        with ExitStack() as servers:
            large = self.server(servers, f"{backend}-100k", self.plan.http_workers)
            small = self.server(servers, f"{backend}-1k", self.plan.http_workers)
            baselines = {}
            if backend == "sqlite":
                baselines = {
                    "gunicorn sync": servers.enter_context(servers_bench.start(servers_bench.GUNICORN_SYNC, self.urls["sqlite-100k"], self.work)),
                    "flask floor": servers.enter_context(servers_bench.start(servers_bench.FLOOR, self.urls["sqlite-100k"], self.work)),
                }
            self._decisions_over_http(backend, rounds, large, small, baselines)

    def _decisions_over_http(self, backend: str, rounds: int, large: Server, small: Server, baselines: dict) -> None:
        bodies = {}
        for label in ("100k", "1k"):
            bodies[label] = self.work / f"authorize-{label}.jsonl"
            bodies[label].write_text(authorize_lines(decision_pool(self.data[label])))
        runs = {
            "floor": lambda seconds: wrk.run(large.base + "/healthz", seconds),
            "authorize 100k": lambda seconds: wrk.run(large.base + "/v1/authorize", seconds, bodies["100k"], KEY),
            "authorize 1k": lambda seconds: wrk.run(small.base + "/v1/authorize", seconds, bodies["1k"], KEY),
        }
        if "gunicorn sync" in baselines:
            sync, flask_floor = baselines["gunicorn sync"].base, baselines["flask floor"].base
            runs["gunicorn sync authorize 100k"] = lambda seconds: wrk.run(sync + "/v1/authorize", seconds, bodies["100k"], KEY)
            runs["flask floor"] = lambda seconds: wrk.run(flask_floor + "/", seconds)
        for drive in runs.values():  # warm-up: every worker caches the pool's facts, nothing recorded
            drive(2)
        found: dict[str, list[wrk.WrkRun]] = {name: [] for name in runs}
        names = list(runs)
        for round_number in range(rounds):
            for name in names[round_number % len(names):] + names[: round_number % len(names)]:
                found[name].append(runs[name](self.plan.wrk_seconds))
            self.say(f"wrk round {round_number + 1}/{rounds} on {backend}: " + ", ".join(
                f"{name} {found[name][-1].per_second:.0f}/s p99 {found[name][-1].p99_ms:.1f} ms" for name in names))
        self.detail(f"wrk {backend}", {name: [run.as_dict() for run in found[name]] for name in names})
        self.detail("wrk command", " ".join(wrk.command(large.base + "/v1/authorize", self.plan.wrk_seconds, bodies["100k"], "KEY")))
        floor, authorize, small_authorize = found["floor"], found["authorize 100k"], found["authorize 1k"]
        self.figure(f"http {backend} floor per second", Figure.of_rounds([run.per_second for run in floor]))
        self.figure(f"http {backend} authorize per second", Figure.of_rounds([run.per_second for run in authorize]))
        self.figure(f"http {backend} floor p99 ms", Figure.of_rounds([run.p99_ms for run in floor]))
        self.figure(f"http {backend} authorize p99 ms", Figure.of_rounds([run.p99_ms for run in authorize]))
        self.figure(f"http {backend} throughput ratio", Figure.of_rounds(
            [a.per_second / f.per_second for a, f in zip(authorize, floor, strict=True)]))
        self.figure(f"http {backend} p99 ratio", Figure.of_rounds(
            [a.p99_ms / f.p99_ms for a, f in zip(authorize, floor, strict=True)]))
        if "gunicorn sync" in baselines:
            sync, flask_floor = found["gunicorn sync authorize 100k"], found["flask floor"]
            self.figure(f"http {backend} gunicorn sync authorize per second", Figure.of_rounds([run.per_second for run in sync]))
            self.figure(f"http {backend} gunicorn sync authorize p99 ms", Figure.of_rounds([run.p99_ms for run in sync]))
            self.figure(f"http {backend} flask floor per second", Figure.of_rounds([run.per_second for run in flask_floor]))
            self.figure(f"http {backend} flask floor p99 ms", Figure.of_rounds([run.p99_ms for run in flask_floor]))
            for name, against in (("gunicorn sync", sync), ("flask floor", flask_floor)):
                self.figure(f"http {backend} authorize to {name} throughput", Figure.of_rounds(
                    [a.per_second / b.per_second for a, b in zip(authorize, against, strict=True)]))
                self.figure(f"http {backend} authorize to {name} p99", Figure.of_rounds(
                    [a.p99_ms / b.p99_ms for a, b in zip(authorize, against, strict=True)]))
        self.figure(f"http {backend} authorize p50 ms 100k", Figure.of_rounds([run.p50_ms for run in authorize]))
        self.figure(f"http {backend} authorize p50 ms 1k", Figure.of_rounds([run.p50_ms for run in small_authorize]))
        self.figure(f"http {backend} authorize p50 flatness", Figure.of_rounds(
            [a.p50_ms / b.p50_ms for a, b in zip(authorize, small_authorize, strict=True)]))
        self.figure(f"http {backend} authorize throughput 1k/100k", Figure.of_rounds(
            [b.per_second / a.per_second for a, b in zip(authorize, small_authorize, strict=True)]))
        self.batch_and_list(backend, large, small)
        self.figure(f"rss {backend} 2 workers after the http runs", Figure.of_rounds(list(worker_rss_mb(large).values())))

    def batch_and_list(self, backend: str, large: Server, small: Server) -> None:
        """Per-call timings from Python, each alternating with the /healthz floor of the same server."""
        pools = {label: decision_pool(self.data[label]) for label in ("100k", "1k")}

        def batch_verifier(label: str):
            expected = [check.expected for check in pools[label]]

            def verify(answer: dict) -> None:
                if [result["allowed"] for result in answer["results"]] != expected:
                    raise WrongAnswer(f"{backend} {label}: the batch's answers differ from the story's")
            return verify

        def list_verify(answer: dict) -> None:
            if len(answer["ids"]) != 1000 or answer["next_page_token"] is not None:
                raise WrongAnswer(f"{backend}: the partner's list has {len(answer['ids'])} accounts, not 1,000")

        def floor_verify(answer: dict) -> None:
            if answer != {"status": "ok"}:
                raise WrongAnswer(f"/healthz answered {answer}")

        list_body = json.dumps(LIST_REQUEST).encode()
        targets = [
            http_calls.Target("floor 100k", large.base + "/healthz", None, floor_verify),
            http_calls.Target("batch 100k", large.base + "/v1/authorize/batch", batch_body(pools["100k"]), batch_verifier("100k")),
            http_calls.Target("batch 1k", small.base + "/v1/authorize/batch", batch_body(pools["1k"]), batch_verifier("1k")),
            http_calls.Target("list 100k", large.base + "/v1/list", list_body, list_verify),
            http_calls.Target("list 1k", small.base + "/v1/list", list_body, list_verify),
        ]
        http_calls.measure(targets, self.plan.http_rounds, self.plan.http_calls)
        by_label = {target.label: target for target in targets}
        for target in targets:
            self.figure(f"call {backend} {target.label}", Figure.of_rounds(target.rounds))
            self.figure(f"call {backend} {target.label} samples", Figure.of_samples(target.samples))
        floor = by_label["floor 100k"].rounds
        for name in ("batch 100k", "list 100k"):
            self.figure(f"call {backend} {name} to floor", Figure.of_rounds(
                [a / b for a, b in zip(by_label[name].rounds, floor, strict=True)]))
        for kind in ("batch", "list"):
            self.figure(f"call {backend} {kind} flatness", Figure.of_rounds(
                [a / b for a, b in zip(by_label[f"{kind} 100k"].rounds, by_label[f"{kind} 1k"].rounds, strict=True)]))
        self.say(f"{backend}: batch of 1,000 {median_text(by_label['batch 100k'].rounds, 1e3)} ms, "
                 f"list {median_text(by_label['list 100k'].rounds, 1e3)} ms, "
                 f"list at 1k {median_text(by_label['list 1k'].rounds, 1e3)} ms")

    def memory(self) -> None:
        """One worker alone, so that it sees every request: its RSS before and after caching every fact of the store."""
        with ExitStack() as servers:
            self._memory(self.server(servers, "sqlite-100k", 1))

    def _memory(self, server: Server) -> None:
        (worker,) = server.worker_pids()
        before = worker_rss_mb(server)[worker]
        session = requests.Session()
        batches = every_membership_batches(self.data["100k"])
        if not self.plan.sweep_every_membership:
            batches = (batch for _, batch in zip(range(20), batches, strict=False))
        timings, checked = [], 0
        for checks in batches:
            checked += len(checks)
            elapsed, _answer = http_calls.call(session, server.base + "/v1/authorize/batch", json.dumps({"checks": checks}).encode())
            timings.append(elapsed)
        after = worker_rss_mb(server)[worker]
        self.figure("rss one worker every fact cached", Figure.of_rounds([after]))
        self.detail("rss one worker", {"before": before, "after": after, "batches": len(timings), "checks": checked})
        self.figure("call sqlite batch cold", Figure.of_samples(timings))
        self.say(f"memory: one worker {before:.0f} MB idle, {after:.0f} MB after {len(timings)} batches "
                 f"(cold batch median {median_text(timings, 1e3)} ms)")

    def writes(self) -> None:
        with ExitStack() as servers:
            self._writes(self.server(servers, "postgresql-100k", self.plan.write_workers))

    def _writes(self, server: Server) -> None:
        data = self.data["100k"]
        connections = self.plan.write_connections
        revision_before = writes.wait_until_quiet(self.urls["postgresql-100k"])
        warm = writes.drive(server.base, data, 2, connections, 0)
        rounds = [warm]
        for round_number in range(1, self.plan.write_rounds + 1):
            rounds.append(writes.drive(server.base, data, self.plan.write_seconds, connections, round_number))
            self.say(f"writes round {round_number}: {rounds[-1].per_second:.0f} changes/s, "
                     f"{rounds[-1].refused_as_expected} refusals as expected")
        measured = rounds[1:]
        self.figure("writes per second", Figure.of_rounds([r.per_second for r in measured]))
        self.figure("writes p99 ms", Figure.of_rounds([r.p99_ms for r in measured]))
        changes_seen = sum(r.changes for r in rounds)
        checks = writes.check_invariants(
            self.urls["postgresql-100k"], data, revision_before, changes_seen, connections * len(rounds)
        )
        self.detail("writes rounds", [r.as_dict() for r in measured])
        self.detail("writes warm-up round", warm.as_dict())
        self.detail("invariants", [check.__dict__ for check in checks])
        self.detail("writes unexpected", [r.first_unexpected for r in rounds if r.unexpected]
                    + [message for r in rounds for message in r.refusals_unexpected])
        self.say("invariants: " + ("all hold" if all(c.ok for c in checks) else "BROKEN: " + ", ".join(
            c.name for c in checks if not c.ok)))


def median_text(values: list[float], scale: float) -> str:
    """The median of `values` times `scale`, for the progress lines."""
    return f"{statistics.median(values) * scale:.1f}" if values else "-"


def main() -> int:
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    plan = QUICK if quick else FULL
    output = BENCH_DIR / "out" / "RESULTS-quick.md" if quick else BENCH_DIR / "RESULTS.md"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that every server and database is cleaned up
    if shutil.which("wrk") is None:
        print("wrk is missing: `apt-get install -y wrk` (make bench does it)", file=sys.stderr)
        return 2
    (BENCH_DIR / "out").mkdir(exist_ok=True)
    started = time.perf_counter()
    problem = datasets.postgres_problem(POSTGRES_ADMIN)
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="run-", dir=BENCH_DIR / "out"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        bench = Bench(plan, work, stack)
        neighbours = machine.Neighbours().start()
        stack.callback(neighbours.stop)
        bench.results["machine"] = machine.describe(None if problem else POSTGRES_ADMIN)
        bench.results["postgres problem"] = problem
        bench.say(f"machine: {bench.results['machine']}")
        if problem:
            bench.say(f"PostgreSQL is not reachable ({problem}): its figures are left out")
        neighbours.mark("building the stores")
        bench.build(with_postgres=problem is None)
        neighbours.mark("in process")
        bench.in_process()
        neighbours.mark("HTTP on SQLite")
        bench.decisions_over_http("sqlite", plan.wrk_rounds)
        neighbours.mark("memory")
        bench.memory()
        if problem is None:
            neighbours.mark("HTTP on PostgreSQL")
            bench.decisions_over_http("postgresql", plan.postgres_wrk_rounds)
            neighbours.mark("writes")
            bench.writes()
        bench.results["neighbours"] = neighbours.phases()
        bench.results["seconds"] = time.perf_counter() - started
        bench.results["command"] = "make bench" + (" (BENCH_QUICK=1)" if quick else "")
        (BENCH_DIR / "out" / ("results-quick.json" if quick else "results.json")).write_text(
            json.dumps(bench.results, indent=2, default=str)
        )
        output.write_text(report.render(bench.results))
        bench.say(f"done in {bench.results['seconds'] / 60:.1f} min: {output.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
