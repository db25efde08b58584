"""`BENCH_LARGE=1 make bench`: the 1,000,000-account shape (3,000,000 memberships), written to bench/LARGE.md.

    .venv/bin/python -m bench.large                      # 1,000,000 accounts: about 20-30 minutes
    LARGE_ACCOUNTS=100000 .venv/bin/python -m bench.large   # a smaller shape, same figures (bench/out/LARGE-100k.md)
    LARGE_BACKENDS=postgresql LARGE_AGAIN=0 ...             # one backend, no second import: while working on one figure

For SQLite and (when reachable) PostgreSQL: the store is filled by `authz import` of an
NDJSON file of the shape (the import rate, its peak memory, then a second run of the same
file, which changes nothing); the real server (`authz serve`, 2 sync workers) starts on
it (start-up time); then wrk drives `/v1/authorize` with random actors and accounts, every
body distinct so that every decision is cold (the worker's fact cache has never seen it),
alternating with SPEC's floor (`bench/floor_app.py` on gunicorn, 2 sync workers) in the same run; and `/v1/list` of the partner's
1,000 accounts is timed. The shape is `bench/datasets.py`'s, streamed: each account has its
admin; u_partner pays for 1,000 of them (restricted, invoices kept out of purchases); a fifth
of the others have a firm as payment manager (half of them restricted); and collaborators and
readers drawn from a pool of N/2 users fill the memberships up to 3N.

PostgreSQL is measured twice: on the machine's server as it is configured (Debian's defaults:
`shared_buffers` 128 MB), and on a cluster of the bench's own on the same cores
(`bench/soak_pg.py`) whose only change is `shared_buffers` sized for the store (SIZED_SETTINGS),
its fact tables and their indexes loaded into it (pg_prewarm) before the server starts. At
1,000,000 accounts what a decision reads (about 250 MB of indexes) does not fit in 128 MB, and
this machine's kernel pages out file cache left idle for a minute (DAMON); what a decision then
reads comes from a disk that answers a few hundred reads a second, with waits of tens to hundreds
of milliseconds behind the WAL's fsync. The second column is a production server sized for its
store; the first is what an undersized one gives here.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg

from bench import datasets, http_calls, machine, wrk
from bench.datasets import FIRMS, PARTNER, account_id, admin_of
from bench.decision_log import floor_server
from bench.server import KEY, serve, worker_rss_mb
from bench.soak_pg import ThrowawayPostgres, postgres_bindir
from bench.workload import LIST_REQUEST
from models.database import Database

BENCH_DIR = Path(__file__).resolve().parent
POSTGRES_ADMIN = os.environ.get(
    "AUTHZ_BENCH_POSTGRES", os.environ.get("AUTHZ_TEST_POSTGRES", "postgresql://127.0.0.1:5432/postgres")
)
AUTHZ = str(Path(sys.executable).with_name("authz"))
ACTIONS = ("read", "view_workspace", "manage_subscription", "view_subscription", "manage_members", "edit_workspace")
SAMPLE = 200_000  # memberships kept (reservoir) to ask about
ROUNDS = 4
WRK_SECONDS = 5.0
BODIES_PER_RUN = 60_000  # more than a run sends (about 35,000 at 7,000/s): no body is asked twice in a run
SIZED_SETTINGS = {"shared_buffers": "1GB"}  # the fact tables and all their indexes: about 650 MB at 1,000,000 accounts
SIZED = "postgresql, shared_buffers 1GB"
FACT_TABLES = ("accounts", "memberships", "support_agents")


def shape_lines(accounts: int, seed: int = datasets.SEED) -> Iterator[tuple[str, str, str]]:
    """(kind, account, json line) of the shape, account by account; an account's lines together."""
    rng = random.Random(seed)
    stride = accounts // 1_000 if accounts >= 1_000 else 1
    pool = max(accounts // 2, 10)
    for number in range(accounts):
        account = account_id(number)
        restricted, auto_add, payment_manager = False, True, None
        if number % stride == 0 and number // stride < 1_000:
            payment_manager, restricted, auto_add = PARTNER, True, False
        elif rng.random() < 0.2:
            payment_manager = f"u_firm_{rng.randrange(FIRMS):03d}"
            restricted, auto_add = rng.random() < 0.5, rng.random() < 0.5
        yield "account", account, json.dumps({
            "type": "account", "id": account, "name": f"Entreprise {number}", "admin": admin_of(number),
            "restrict_subscription_to_payment_manager": restricted,
            "auto_add_subscription_invoices_to_purchases": auto_add,
        })
        members = {}
        if payment_manager is not None:
            members[payment_manager] = "payment_manager"
        while len(members) < 2:  # 1 + 2 memberships per account: 3N in all
            members.setdefault(f"u_{rng.randrange(pool):06d}", "collaborator" if rng.random() < 0.4 else "reader")
        for user, role in members.items():
            yield "membership", account, json.dumps({"type": "membership", "account": account, "user": user, "role": role})


def write_shape(path: Path, accounts: int) -> tuple[int, list[tuple[str, str]]]:
    """Write the shape's NDJSON file; answers its line count and a sample of (member, account) pairs."""
    rng = random.Random(11)
    sample: list[tuple[str, str]] = []
    seen = 0
    count = 0
    with path.open("w") as out:
        for kind, account, text in shape_lines(accounts):
            out.write(text + "\n")
            count += 1
            if kind == "membership":
                pair = (json.loads(text)["user"], account)
            else:
                pair = (json.loads(text)["admin"], account)
            seen += 1
            if len(sample) < SAMPLE:
                sample.append(pair)
            elif (slot := rng.randrange(seen)) < SAMPLE:
                sample[slot] = pair
    return count, sample


def import_file(url: str, path: Path) -> dict:
    """`authz import` in a process of its own: wall time, its own peak RSS, its summary line."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([AUTHZ, "import", str(path)], env={**os.environ, "DATABASE_URL": url}, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"authz import exited {process.returncode}: {err.read().decode()[-2000:]}")
        return {
            "seconds": elapsed, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "summary": out.read().decode().strip(), "peak_rss_mb": usage.ru_maxrss / 1024,
        }


def cold_bodies(sample: list[tuple[str, str]], rng: random.Random, count: int, accounts: int) -> str:
    """`count` distinct decisions: half on a member's own account, half a random user on a random account."""
    lines = []
    for position in range(count):
        if position % 2 == 0:
            actor, account = sample[rng.randrange(len(sample))]
        else:
            actor, account = f"u_{rng.randrange(max(accounts // 2, 10)):06d}", account_id(rng.randrange(accounts))
        action = ACTIONS[rng.randrange(len(ACTIONS))]
        lines.append(json.dumps({
            "actor": {"type": "User", "id": actor}, "action": action, "resource": {"type": "Account", "id": account},
        }, separators=(",", ":")))
    return "\n".join(lines) + "\n"


@contextmanager
def connection_split(server, after: float = 2.0) -> Iterator[list[int]]:
    """How wrk's keep-alive connections are spread over the workers, read with `ss` `after` seconds into the run.

    Each connection stays with the worker that accepted it, and granian leaves that to
    whichever worker accepts first: a worker holding 11 of the 16 connections queues
    twice the requests of one holding 5, and the run's p99 is that worker's. The floor
    (gunicorn sync) takes a new connection per request and never sees it.
    """
    split: list[int] = []

    def look() -> None:
        time.sleep(after)
        listing = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{server.port} )"],
            capture_output=True, text=True, check=False,
        ).stdout
        split.extend(sorted((listing.count(f"pid={pid},") for pid in server.worker_pids()), reverse=True))

    looking = threading.Thread(target=look, daemon=True)
    looking.start()
    yield split
    looking.join()


def prewarm(url: str) -> int:
    """Load the fact tables and their indexes into PostgreSQL's shared buffers; answers the 8 kB blocks read.

    What a server that has been answering decisions holds, and what `pg_prewarm.autoprewarm`
    restores after a restart: the bench measures decisions cold in the workers' fact cache,
    not in the database's.
    """
    tables = ", ".join(f"'{table}'::regclass" for table in FACT_TABLES)
    with psycopg.connect(datasets.libpq_url(url), autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        return connection.execute(
            f"SELECT coalesce(sum(pg_prewarm(oid)), 0) FROM pg_class WHERE oid IN ({tables}) "
            f"OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN ({tables}))"
        ).fetchone()[0]


def measure(backend: str, url: str, path: Path, lines: int, sample: list, accounts: int, work: Path) -> dict:
    found: dict = {"backend": backend}
    say(f"{backend}: importing {lines:,} lines")
    first = import_file(url, path)
    found["import"] = {**first, "lines_per_second": lines / first["seconds"]}
    say(f"{backend}: imported at {lines / first['seconds']:,.0f} lines/s ({first['seconds']:.0f} s)")
    if os.environ.get("LARGE_AGAIN", "1") != "0":  # LARGE_AGAIN=0 leaves the second run out (minutes at 1M)
        again = import_file(url, path)
        found["import again"] = again
        say(f"{backend}: the same file again: {again['seconds']:.0f} s, {again['summary'][:80]}")
    if backend == SIZED:
        found["prewarmed MB"] = prewarm(url) * 8 / 1024
        say(f"{backend}: {found['prewarmed MB']:.0f} MB of fact tables and indexes loaded into shared_buffers")
    with ExitStack() as servers:
        started = time.perf_counter()
        server = servers.enter_context(serve(url, 2, work, f"large-{backend}"))
        found["start-up seconds"] = time.perf_counter() - started
        floor_base = servers.enter_context(floor_server(work))
        rng = random.Random(3)
        warm = work / f"warm-{backend}.jsonl"
        warm.write_text(cold_bodies(sample, rng, 2_000, accounts))
        wrk.run(floor_base + "/", 2)
        wrk.run(server.base + "/v1/authorize", 2, warm, KEY)  # connections, prepared statements: not facts
        runs: dict[str, list[wrk.WrkRun]] = {"floor": [], "authorize cold": []}
        splits: list[list[int]] = []
        for round_number in range(ROUNDS):
            bodies = work / f"cold-{backend}-{round_number}.jsonl"
            bodies.write_text(cold_bodies(sample, rng, BODIES_PER_RUN, accounts))
            order = ["floor", "authorize cold"] if round_number % 2 == 0 else ["authorize cold", "floor"]
            for name in order:
                if name == "floor":
                    runs[name].append(wrk.run(floor_base + "/", WRK_SECONDS))
                else:
                    with connection_split(server) as split:
                        runs[name].append(wrk.run(server.base + "/v1/authorize", WRK_SECONDS, bodies, KEY))
                    splits.append(split)
            floor, cold = runs["floor"][-1], runs["authorize cold"][-1]
            if cold.requests > BODIES_PER_RUN:
                say(f"warning: {cold.requests} requests for {BODIES_PER_RUN} bodies: some decisions were not cold")
            say(f"{backend} round {round_number + 1}: floor {floor.per_second:.0f}/s p99 {floor.p99_ms:.1f} ms, "
                f"cold authorize {cold.per_second:.0f}/s p99 {cold.p99_ms:.1f} ms "
                f"({cold.requests} requests, {BODIES_PER_RUN} distinct bodies; wrk's connections per worker "
                f"{'/'.join(map(str, splits[-1])) or 'unknown'})")
        found["wrk"] = {name: [run.as_dict() for run in found_runs] for name, found_runs in runs.items()}
        found["connections per worker"] = splits
        found["throughput ratio"] = [
            a.per_second / f.per_second for a, f in zip(runs["authorize cold"], runs["floor"], strict=True)
        ]
        found["p99 ratio"] = [a.p99_ms / f.p99_ms for a, f in zip(runs["authorize cold"], runs["floor"], strict=True)]

        def list_verify(answer: dict) -> None:
            if len(answer["ids"]) != 1_000:
                raise RuntimeError(f"the partner's list has {len(answer['ids'])} accounts, not 1,000")

        target = http_calls.Target("list", server.base + "/v1/list", json.dumps(LIST_REQUEST).encode(), list_verify)
        http_calls.measure([target], 3, 5)
        found["list ms"] = [value * 1e3 for value in target.rounds]
        found["worker rss mb"] = list(worker_rss_mb(server).values())
    say(f"{backend}: ratio {statistics.median(found['throughput ratio']):.2f}, p99 ratio "
        f"{statistics.median(found['p99 ratio']):.2f}, list {statistics.median(found['list ms']):.0f} ms, "
        f"start-up {found['start-up seconds']:.1f} s")
    return found


def render(results: dict) -> str:
    accounts = results["accounts"]
    out = [
        f"# The large shape: {accounts:,} accounts, {results['lines']:,} import lines",
        "",
        f"Measured by `{results['command']}` on {results['machine']}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(results['finished']))}. "
        "The machine's 2 cores are shared with PostgreSQL and with whatever else runs "
        f"(load average at the start {results['load at start']}, at the end {results['load at end']}).",
        "",
        "| | " + " | ".join(found["backend"] for found in results["backends"]) + " |",
        "|---|" + "---|" * len(results["backends"]),
    ]

    def row(label: str, value) -> None:
        out.append(f"| {label} | " + " | ".join(value(found) for found in results["backends"]) + " |")

    row("`authz import`, lines/s", lambda f: f"{f['import']['lines_per_second']:,.0f}")
    row("import wall time", lambda f: f"{f['import']['seconds']:.0f} s")
    row("import CPU time of `authz import` itself (the database's not counted)",
        lambda f: f"{f['import'].get('cpu_seconds', float('nan')):.0f} s")
    row("import peak RSS", lambda f: f"{f['import']['peak_rss_mb']:.0f} MB")
    row("same file again (changes nothing)",
        lambda f: f"{f['import again']['seconds']:.0f} s" if "import again" in f else "not run (LARGE_AGAIN=0)")
    row("cold `/v1/authorize` ÷ floor (median of rounds)",
        lambda f: f"{statistics.median(f['throughput ratio']):.2f}× ({', '.join(f'{r:.2f}' for r in f['throughput ratio'])})")
    row("cold `/v1/authorize`, requests/s (median)",
        lambda f: f"{statistics.median(r['per_second'] for r in f['wrk']['authorize cold']):.0f}")
    row("floor, requests/s (median)", lambda f: f"{statistics.median(r['per_second'] for r in f['wrk']['floor']):.0f}")
    row("p99 cold ÷ p99 floor (median)",
        lambda f: f"{statistics.median(f['p99 ratio']):.2f}× ({', '.join(f'{r:.2f}' for r in f['p99 ratio'])})")
    row("wrk's 16 connections per worker, each cold round", lambda f: ", ".join(
        "/".join(map(str, split)) or "?" for split in f.get("connections per worker", [])) or "not recorded")
    row("p99 cold / floor (median)", lambda f: (
        f"{statistics.median(r['p99_ms'] for r in f['wrk']['authorize cold']):.1f} / "
        f"{statistics.median(r['p99_ms'] for r in f['wrk']['floor']):.1f} ms"))
    row("`/v1/list` of the partner's 1,000 accounts", lambda f: f"{statistics.median(f['list ms']):.0f} ms")
    row("start-up (`authz serve` until ready)", lambda f: f"{f['start-up seconds']:.1f} s")
    row("worker RSS after the runs", lambda f: ", ".join(f"{mb:.0f}" for mb in f["worker rss mb"]) + " MB")
    out += [
        "",
        "Import summary lines:",
        "",
        *[f"- {found['backend']}: {found['import']['summary']}" for found in results["backends"]],
        *[f"- {found['backend']}, again: {found['import again']['summary']}"
          for found in results["backends"] if "import again" in found],
        "",
        f"Cold decisions: {ROUNDS} rounds of wrk ({wrk.THREADS} threads, {wrk.CONNECTIONS} connections, "
        f"{WRK_SECONDS:g} s), each round on {BODIES_PER_RUN:,} bodies never sent before (half a member on their own "
        "account, half a random user on a random account; six Account actions), alternating with SPEC's floor: a "
        "trivial Flask endpoint on gunicorn, 2 sync workers (`bench/floor_app.py`). The service runs as configured "
        "by default (decision log on).",
        "",
        *([
            f"`{SIZED}`: a PostgreSQL cluster of the bench's own (`bench/soak_pg.py`), same version, same "
            f"machine and cores, started with {', '.join(f'`{k}={v}`' for k, v in SIZED_SETTINGS.items())} and "
            "otherwise initdb's defaults; after the imports its fact tables and their indexes ("
            + ", ".join(f"{found['prewarmed MB']:.0f} MB" for found in results["backends"] if "prewarmed MB" in found)
            + ") were loaded into its shared buffers with pg_prewarm, as on a server that has been answering. The "
            "machine's own server (`postgresql`) keeps Debian's 128 MB, smaller than what a decision reads at "
            "1,000,000 accounts, and this machine's kernel pages out file cache idle for a minute: its cold "
            "rounds read from the disk now and then, which is what its p99 shows.",
            "",
        ] if any("prewarmed MB" in found for found in results["backends"]) else []),
    ]
    return "\n".join(out)


def say(message: str) -> None:
    print(f"[large {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    accounts = int(os.environ.get("LARGE_ACCOUNTS", "1000000"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        print("wrk is missing: `apt-get install -y wrk` (make bench does it)", file=sys.stderr)
        return 2
    (BENCH_DIR / "out").mkdir(exist_ok=True)
    output = BENCH_DIR / "LARGE.md" if accounts == 1_000_000 else BENCH_DIR / "out" / f"LARGE-{accounts // 1000}k.md"
    problem = datasets.postgres_problem(POSTGRES_ADMIN)
    results: dict = {
        "accounts": accounts, "backends": [], "load at start": f"{os.getloadavg()[0]:.1f}",
        "machine": ", ".join(
            f"{name} {value}" for name, value in machine.describe(None if problem else POSTGRES_ADMIN).items()
            if name != "date"
        ),
        "command": "BENCH_LARGE=1 make bench" + ("" if accounts == 1_000_000 else f" (LARGE_ACCOUNTS={accounts})"),
    }
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="large-", dir=BENCH_DIR / "out"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        path = work / "shape.ndjson"
        results["lines"], sample = write_shape(path, accounts)
        say(f"{results['lines']:,} lines written for {accounts:,} accounts")
        wanted = os.environ.get("LARGE_BACKENDS", "sqlite,postgresql,postgresql-sized").split(",")
        stores = [("sqlite", f"sqlite:///{work / 'large.sqlite3'}")] if "sqlite" in wanted else []
        if "postgresql" in wanted and problem is None:
            stores.append(("postgresql", stack.enter_context(datasets.postgres_database(POSTGRES_ADMIN, "large"))))
        elif "postgresql" in wanted:
            say(f"PostgreSQL is not reachable ({problem}): its figures are left out")
        if "postgresql-sized" in wanted:
            try:
                postgres_bindir()
            except RuntimeError as error:
                say(f"no PostgreSQL server binaries to start a sized cluster ({error}): its figures are left out")
            else:
                sized = ThrowawayPostgres(SIZED_SETTINGS, database="authz_large")
                stack.callback(sized.close)
                sized.create()
                stores.append((SIZED, sized.url))
        for backend, url in stores:
            Database(url).migrate()
            results["backends"].append(measure(backend, url, path, results["lines"], sample, accounts, work))
    results["load at end"] = f"{os.getloadavg()[0]:.1f}"
    results["finished"] = time.time()
    (BENCH_DIR / "out" / f"large-{accounts}.json").write_text(json.dumps(results, indent=2, default=str))
    output.write_text(render(results))
    say(f"written: {output.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
