"""A throwaway PostgreSQL cluster (the soak test, the large shape's sized server): its own data directory, port and socket directory.

The soak restarts the database in the middle of its run; it must never touch
the machine's shared server (127.0.0.1:5432, used by other test sessions), so
it runs its own: `initdb` into a temporary directory, `pg_ctl start` on a free
port listening on 127.0.0.1 only, and at the end `pg_ctl stop` and the
directory removed, also when the soak fails. As root, the server binaries run
as the `postgres` OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.servers import free_port

DATABASE = "authz_soak"


def postgres_bindir() -> Path:
    """The newest installed server's bin directory (Debian layout), or the one `pg_config` names."""
    versions = sorted(
        (path for path in Path("/usr/lib/postgresql").glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    try:
        return Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError) as error:
        raise RuntimeError("no PostgreSQL server binaries found (initdb, pg_ctl)") from error


class ThrowawayPostgres:
    """One PostgreSQL cluster that lives as long as the soak (or a bench); `url` is what the service connects to.

    `settings` are server settings given at start (`-c name=value`), over initdb's defaults.
    """

    def __init__(self, settings: dict[str, str] | None = None, database: str = DATABASE) -> None:
        self.settings = dict(settings or {})
        self.database = database
        self.bindir = postgres_bindir()
        self.version = self.bindir.parent.name
        self.root = Path(tempfile.mkdtemp(prefix="authz-soak-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgresql.log"
        self.port = free_port()
        self.running = False
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def conninfo(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *arguments: str, timeout: float = 60) -> str:
        completed = subprocess.run(
            [*self._as_postgres, *arguments], capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{' '.join(arguments)} failed ({completed.returncode}): {completed.stderr.strip()}")
        return completed.stdout

    def create(self) -> None:
        """initdb, start, and create the (empty) database; the service migrates it when it starts."""
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self.start()
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True, connect_timeout=5
        ) as connection:
            connection.execute(f'CREATE DATABASE "{self.database}"')

    def start(self) -> None:
        options = " ".join([
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200",
            *(f"-c {name}={value}" for name, value in self.settings.items()),
        ])
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def server_version(self) -> str:
        with psycopg.connect(self.conninfo, connect_timeout=5) as connection:
            return connection.execute("SHOW server_version").fetchone()[0]

    def close(self, keep_log: Path | None = None) -> None:
        """Stop the cluster if it runs and remove its directory (copying its log to `keep_log` first)."""
        try:
            if self.running or (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():  # pg_ctl could not stop it: stop the postmaster this soak started, by its pid
                try:
                    os.kill(int(pid_file.read_text().split()[0]), 9)
                except (OSError, ValueError):
                    pass
        finally:
            if keep_log is not None and self.log.exists():
                keep_log.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.log, keep_log)
            shutil.rmtree(self.root, ignore_errors=True)
