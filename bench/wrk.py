"""Running `wrk` (Debian's package) against the real server, with `wrk_drive.lua` for POST bodies and exact percentiles."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk_drive.lua")
THREADS = 2
CONNECTIONS = 16


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkRun:
    """One wrk run: how many requests it completed in how long, its errors, its latency percentiles (ms)."""

    requests: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def as_dict(self) -> dict:
        return {**asdict(self), "per_second": self.per_second}


def wrk_version() -> str:
    if shutil.which("wrk") is None:
        return "missing"
    result = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).splitlines()[0].split(" Copyright")[0].strip()


def command(url: str, seconds: float, bodies: Path | None = None, key: str | None = None) -> list[str]:
    arguments = [
        "wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s", "--latency",
        "-s", str(SCRIPT), url,
    ]
    if bodies is not None:
        arguments += ["--", str(bodies), key or ""]
    return arguments


def run(url: str, seconds: float, bodies: Path | None = None, key: str | None = None) -> WrkRun:
    """Drive `url` for `seconds`: GET it, or POST the bodies of the file `bodies` in turn with `key`.

    A non-2xx answer means the harness asked something wrong: it is an error, not a figure.
    """
    arguments = command(url, seconds, bodies, key)
    result = subprocess.run(arguments, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((line for line in result.stdout.splitlines() if line.startswith("BENCH_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise WrkError(f"{' '.join(arguments)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    found = json.loads(line[len("BENCH_JSON "):])
    if found["errors"]["status"]:
        raise WrkError(f"{url}: {found['errors']['status']} answers were not 2xx:\n{result.stdout}")
    latency = found["latency_us"]
    return WrkRun(
        requests=found["requests"],
        seconds=found["duration_us"] / 1e6,
        errors=found["errors"],
        p50_ms=latency["p50"] / 1e3,
        p90_ms=latency["p90"] / 1e3,
        p99_ms=latency["p99"] / 1e3,
        max_ms=latency["max"] / 1e3,
    )
