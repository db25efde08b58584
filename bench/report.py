"""bench/RESULTS.md, rendered from one run's results: the targets table first, then every raw figure."""

from __future__ import annotations

from dataclasses import dataclass

from bench.wrk import CONNECTIONS, THREADS


@dataclass(frozen=True)
class Row:
    """One line of the targets table."""

    target: str
    figure: str | None  # a name in results["figures"]
    scale: float
    unit: str
    limit: float | None  # None: reported for information
    at_least: bool = False  # the figure must be at least the limit (else at most)
    floor: str | None = None  # a figure: this one divided by the floor's


ROWS = (
    Row("1. Warm in-process decision, median (SQLite, 100k accounts)", "in-process warm sqlite-100k", 1e6, "µs", 25),
    Row("1. Cold in-process decision, nothing cached (SQLite, 100k)", "in-process cold sqlite-100k", 1e6, "µs", 500),
    Row("1. Warm in-process decision (PostgreSQL, 100k)", "in-process warm postgresql-100k", 1e6, "µs", None),
    Row("1. Cold in-process decision (PostgreSQL, 100k)", "in-process cold postgresql-100k", 1e6, "µs", None),
    Row("2. `POST /v1/authorize` throughput ÷ `/healthz` floor (SQLite, 100k, 2 workers)", "http sqlite throughput ratio",
        1, "×", 0.75, at_least=True),
    Row("2. `POST /v1/authorize` p99 ÷ `/healthz` p99 (SQLite)", "http sqlite p99 ratio", 1, "×", 1.5),
    Row("2. `POST /v1/authorize` throughput (SQLite)", "http sqlite authorize per second", 1, "/s", None),
    Row("2. `GET /healthz` floor throughput (SQLite)", "http sqlite floor per second", 1, "/s", None),
    Row("2. `POST /v1/authorize` throughput ÷ the same app on gunicorn sync workers, 2 (SQLite, same rounds)",
        "http sqlite authorize to gunicorn sync throughput", 1, "×", None),
    Row("2. `POST /v1/authorize` p99 ÷ the same app's p99 on gunicorn sync workers (SQLite)",
        "http sqlite authorize to gunicorn sync p99", 1, "×", None),
    Row("2. `POST /v1/authorize` on gunicorn sync workers, throughput (SQLite)", "http sqlite gunicorn sync authorize per second",
        1, "/s", None),
    Row("2. `POST /v1/authorize` throughput ÷ Flask `jsonify` on gunicorn, 2 sync workers (SPEC's floor, SQLite)",
        "http sqlite authorize to flask floor throughput", 1, "×", 1, at_least=True),
    Row("2. `POST /v1/authorize` p99 ÷ Flask `jsonify` floor's p99 (SQLite)", "http sqlite authorize to flask floor p99",
        1, "×", None),
    Row("2. throughput ÷ floor (PostgreSQL, 100k, 2 workers)", "http postgresql throughput ratio", 1, "×", None),
    Row("2. p99 ÷ floor p99 (PostgreSQL)", "http postgresql p99 ratio", 1, "×", None),
    Row("3. `POST /v1/authorize/batch`, 1,000 checks, facts cached (SQLite, 100k)", "call sqlite batch 100k", 1e3, "ms", 30,
        floor="call sqlite batch 100k to floor"),
    Row("3. batch of 1,000, every fact read from the database (SQLite, 100k)", "call sqlite batch cold", 1e3, "ms", None),
    Row("3. batch of 1,000, facts cached (PostgreSQL, 100k)", "call postgresql batch 100k", 1e3, "ms", None,
        floor="call postgresql batch 100k to floor"),
    Row("4. `POST /v1/list`, partner's 1,000 accounts (SQLite, 100k)", "call sqlite list 100k", 1e3, "ms", 20,
        floor="call sqlite list 100k to floor"),
    Row("4. `POST /v1/list`, partner's 1,000 accounts (PostgreSQL, 100k)", "call postgresql list 100k", 1e3, "ms", 20,
        floor="call postgresql list 100k to floor"),
    Row("5. warm in-process decision, 100k ÷ 1k (SQLite)", "in-process warm sqlite flatness", 1, "×", 1.2),
    Row("5. cold in-process decision, 100k ÷ 1k (SQLite)", "in-process cold sqlite flatness", 1, "×", 1.2),
    Row("5. `/v1/authorize` median latency under wrk, 100k ÷ 1k (SQLite)", "http sqlite authorize p50 flatness", 1, "×", 1.2),
    Row("5. `/v1/list` over HTTP, 100k ÷ 1k (SQLite)", "call sqlite list flatness", 1, "×", 1.2),
    Row("5. `/v1/list` over HTTP, 100k ÷ 1k (PostgreSQL)", "call postgresql list flatness", 1, "×", 1.2),
    Row("5. in-process list, 100k ÷ 1k (SQLite)", "in-process list sqlite flatness", 1, "×", None),
    Row("5. in-process list, 100k ÷ 1k (PostgreSQL)", "in-process list postgresql flatness", 1, "×", None),
    Row("5. warm in-process decision, 100k ÷ 1k (PostgreSQL)", "in-process warm postgresql flatness", 1, "×", None),
    Row("5. cold in-process decision, 100k ÷ 1k (PostgreSQL)", "in-process cold postgresql flatness", 1, "×", None),
    Row("5. `/v1/authorize` median latency under wrk, 100k ÷ 1k (PostgreSQL)", "http postgresql authorize p50 flatness",
        1, "×", None),
    Row("6. one worker's RSS, every fact of the 100k store cached (SQLite)", "rss one worker every fact cached", 1, "MB", 200),
    Row("6. worker RSS after the HTTP runs, 2 workers (SQLite, 100k)", "rss sqlite 2 workers after the http runs", 1, "MB", None),
    Row("6. worker RSS after the HTTP runs, 2 workers (PostgreSQL, 100k)", "rss postgresql 2 workers after the http runs",
        1, "MB", None),
    Row("7. membership changes per second (PostgreSQL, 100k, 4 workers)", "writes per second", 1, "/s", 500, at_least=True),
)


def render(results: dict) -> str:
    figures = results["figures"]
    details = results["details"]
    lines = [
        "# Performance results",
        "",
        f"Written by `{results['command']}` (which runs `.venv/bin/python -m bench.run`) in "
        f"{results['seconds'] / 60:.1f} minutes. Do not edit by hand: run it again.",
        "",
        "The 1,000,000-account shape (`BENCH_LARGE=1 make bench`) is reported apart: [LARGE.md](LARGE.md) "
        "(`authz import`, cold decisions, lists, start-up; written by `bench.large`) and "
        "[AUDIT_SCALE.md](AUDIT_SCALE.md) (`authz changes verify` and the auditor's pages; `bench.audit_scale` "
        "prints them, recorded there with the command); PostgreSQL's own share of the import (its rows written by "
        "COPY alone) in [IMPORT_FLOOR.md](IMPORT_FLOOR.md) (`bench.import_floor`).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in results["machine"].items()),
        "",
        *_neighbours(results.get("neighbours", [])),
        "## Targets (issue 5)",
        "",
        "Each figure is the median of the rounds of one run, with the lowest and highest round in brackets "
        "(per-call figures: the median of each round's calls). *Met?* is blank for figures reported for information.",
        "",
        "| target | measured: median (min-max) | ratio to the floor | target | met? |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        lines.append(_row(row, figures))
    invariants = details.get("invariants")
    if invariants is not None:
        held = all(check["ok"] for check in invariants)
        lines.append(f"| 7. every invariant still holds after the write load (checks below) | "
                     f"{sum(c['ok'] for c in invariants)}/{len(invariants)} checks hold | | all | {'yes' if held else '**no**'} |")
    if results.get("postgres problem"):
        lines += ["", f"PostgreSQL was not reachable ({results['postgres problem']}): its figures are missing."]
    lines += ["", *_method(results), "", *_raw(results)]
    return "\n".join(lines) + "\n"


def _neighbours(phases: list[dict]) -> list[str]:
    """How much of the machine other processes (another session's tests, say) took while each figure was measured."""
    if not phases:
        return []
    return [
        "The machine is shared. CPU used meanwhile by processes outside this run (PostgreSQL left out), "
        "as a share of all its cores; figures measured while this is high are slower and noisier:",
        "",
        "| phase | seconds | others' CPU |",
        "|---|---|---|",
        *(f"| {p['phase']} | {p['seconds']:.0f} | {100 * p['neighbours_share']:.0f}% |" for p in phases),
        "",
    ]


def _row(row: Row, figures: dict) -> str:
    figure = figures.get(row.figure) if row.figure else None
    limit = "" if row.limit is None else f"{'≥' if row.at_least else '≤'} {row.limit:g} {row.unit}"
    if figure is None:
        return f"| {row.target} | not measured | | {limit} | {'' if row.limit is None else '**no**'} |"
    median, low, high = (figure[key] * row.scale for key in ("median", "low", "high"))
    measured = f"{_number(median)} {row.unit} ({_number(low)}-{_number(high)})"
    floor = figures.get(row.floor) if row.floor else None
    floor_text = f"{floor['median']:.1f}× the floor" if floor else ""
    if row.limit is None:
        met = ""
    else:
        ok = median >= row.limit if row.at_least else median <= row.limit
        met = "yes" if ok else "**no**"
    return f"| {row.target} | {measured} | {floor_text} | {limit} | {met} |"


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _method(results: dict) -> list[str]:
    plan = results["plan"]
    details = results["details"]
    return [
        "## What was measured",
        "",
        "- **Stores** (`bench/datasets.py`), bulk-loaded into the tables: 100,000 accounts and 300,000 memberships; "
        "1,000 accounts and 3,000 memberships for the flatness comparison. Every account has exactly one admin. "
        "`u_partner` is payment manager of exactly 1,000 accounts in both stores (every 100th account of the large one, "
        "every account of the small one), so the partner's list answers the same 1,000 ids and only the store's size "
        "differs; those accounts are restricted to the payment manager, invoices not added. A fifth of the other "
        "accounts have another firm as payment manager; the rest of the memberships are collaborators and readers "
        "drawn from a pool of N/2 users. The change log is empty and the revision counter 0. Built from the same seed "
        "on SQLite (a file) and on PostgreSQL (a database `authz_bench_*` dropped at the end, `VACUUM ANALYZE`d after "
        "the load).",
        "- **Decisions** (`bench/workload.py`): 1,000 checks, one on each of the partner's accounts, rotating over "
        "six questions (the partner manages the subscription / sees the workspace; the admin sees the subscription "
        "page / a document / removes the partner; the partner deletes their card), on Account, Document, "
        "PaymentMethod and Membership. Every answer is checked against the story before and while timing.",
        f"- **In process** (`bench/in_process.py`): `Runtime.build(...)` and `runtime.authorizer.authorize(...)` in a "
        f"loop, each call timed with `perf_counter`; {plan['in_process_rounds']} rounds, each store in turn, each "
        f"round {plan['warm_calls']:,} warm calls (the pool cycled, its facts cached) and {plan['cold_calls']} cold "
        "calls (the fact cache's roles, settings and support flags emptied before each call).",
        f"- **Over HTTP**: the real server, `authz serve` (granian, {plan['http_workers']} workers of 2 threads, "
        "keep-alive; `service/serving.py`). **The floor is `GET /healthz`**: the same app, the same workers, the "
        "same run, no key, no body, no facts. On SQLite the same rounds also drive the same app's `/v1/authorize` on "
        "gunicorn with 2 sync workers (the server before granian, `bench/gunicorn_conf.py`) and SPEC's floor, "
        "Flask `jsonify(status=\"ok\")` on gunicorn with 2 sync workers (`bench/floor_app.py`). wrk (Debian's) with `bench/wrk_drive.lua`: "
        f"`-t{THREADS} -c{CONNECTIONS} -d{plan['wrk_seconds']:g}s --latency`, {plan['wrk_rounds']} rounds on SQLite "
        f"and {plan['postgres_wrk_rounds']} on PostgreSQL, the floor, `/v1/authorize` on the large store and on the "
        "small one taking turns (the order rotating every round) after a 2 s warm-up of each; ratios are taken "
        "round by round and their median reported. Exact command of one authorize run:",
        f"  `{details.get('wrk command', '')}`",
        f"- **Batch and list** (`bench/http_calls.py`): one `requests.Session` from Python, each call timed to the whole "
        f"answer, {plan['http_rounds']} rounds of {plan['http_calls']} calls per endpoint, the calls to `/healthz` (the "
        "floor of this way of calling), to the large and to the small store alternating call by call. The batch is "
        "the 1,000 checks above (cached after the warm-up); the list is the partner's `manage_subscription` accounts.",
        "- **Memory**: a server with a single worker (so it sees every request) on the 100k SQLite store; its "
        "VmRSS before and after `/v1/authorize/batch` calls asking, for every one of the 300,000 memberships, whether "
        "the member may `read` the account, which leaves every account's settings, every role and every user's "
        "support flag in its fact cache. The same batches give the cold-batch figure.",
        f"- **Writes** (`bench/writes.py`): 4 workers on the 100k PostgreSQL store; wrk with `bench/wrk_writes.lua`, "
        f"{plan['write_connections']} connections, each inviting a new member into a random account as that account's "
        "admin (so the write path checks the policy) then removing them; every 201/200 is one change. "
        f"{plan['write_rounds']} rounds of {plan['write_seconds']:g} s after a 2 s warm-up. Meanwhile a Python client "
        "keeps trying what the invariants forbid (a second payment manager, removing the last admin, removing the "
        "protected payment manager, a second invitation): each must answer 409 with its code. Then the database is "
        "checked in one snapshot.",
    ]


def _raw(results: dict) -> list[str]:
    figures, details = results["figures"], results["details"]
    lines = ["## Raw figures", "", "### In process (median of each round)", "", "| figure | rounds |", "|---|---|"]
    for name, figure in figures.items():
        if name.startswith("in-process") and not name.endswith("samples") and "flatness" not in name:
            scale, unit = (1e3, "ms") if " list " in name else (1e6, "µs")
            lines.append(f"| {name} | {', '.join(_number(value * scale) for value in figure['raw'])} {unit} |")
    for backend in ("sqlite", "postgresql"):
        runs = details.get(f"wrk {backend}")
        if not runs:
            continue
        lines += ["", f"### wrk rounds, {backend}: requests/s, p50 / p99 latency (ms), socket errors", "",
                  "| round | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
        for number in range(len(next(iter(runs.values())))):
            cells = []
            for series in runs.values():
                run = series[number]
                errors = sum(run["errors"].values())
                cells.append(f"{run['per_second']:,.0f}/s, {run['p50_ms']:.1f} / {run['p99_ms']:.1f}"
                             + (f", {errors} errors" if errors else ""))
            lines.append(f"| {number + 1} | " + " | ".join(cells) + " |")
    lines += ["", "### Per-call timings over HTTP (median of each round, ms)", "", "| figure | rounds | all calls: p10 / median / p90 |",
              "|---|---|---|"]
    for name, figure in figures.items():
        if name.startswith("call ") and not name.endswith(("samples", "to floor", "flatness", "cold")):
            calls = figures.get(name + " samples")
            spread = f"{calls['low'] * 1e3:.2f} / {calls['median'] * 1e3:.2f} / {calls['high'] * 1e3:.2f}" if calls else ""
            lines.append(f"| {name[5:]} | {', '.join(f'{value * 1e3:.2f}' for value in figure['raw'])} | {spread} |")
    cold = figures.get("call sqlite batch cold")
    if cold:
        lines.append(f"| sqlite batch, every fact read from the database ({cold['n']} batches) | | "
                     f"{cold['low'] * 1e3:.1f} / {cold['median'] * 1e3:.1f} / {cold['high'] * 1e3:.1f} |")
    memory = details.get("rss one worker")
    if memory:
        lines += ["", "### Memory", "",
                  f"One worker: {memory['before']:.0f} MB before, {memory['after']:.0f} MB after {memory['checks']:,} "
                  f"checks in {memory['batches']} batches."]
    for backend in ("sqlite", "postgresql"):
        figure = figures.get(f"rss {backend} 2 workers after the http runs")
        if figure:
            lines.append(f"Workers of the 2-worker {backend} server after its HTTP runs: "
                         + ", ".join(f"{value:.0f} MB" for value in figure["raw"]) + ".")
    rounds = details.get("writes rounds")
    if rounds:
        lines += ["", "### Writes (PostgreSQL, 4 workers)", "",
                  "| round | changes | seconds | changes/s | p50 / p99 (ms) | unexpected answers | refusals as expected |",
                  "|---|---|---|---|---|---|---|"]
        for number, found in enumerate(rounds, 1):
            lines.append(f"| {number} | {found['changes']:,} | {found['seconds']:.1f} | {found['per_second']:.0f} | "
                         f"{found['p50_ms']:.1f} / {found['p99_ms']:.1f} | {found['unexpected']} | "
                         f"{found['refused_as_expected']} |")
        lines += ["", "| invariant check | expected | found | holds? |", "|---|---|---|---|"]
        for check in details.get("invariants", []):
            lines.append(f"| {check['name']} | {check['expected']} | {check['found']} | {'yes' if check['ok'] else '**no**'} |")
        for message in details.get("writes unexpected", []):
            lines.append(f"\nUnexpected: `{message}`")
    return lines
