"""Fixtures: every test that takes `api` runs on SQLite and, when it is reachable, on PostgreSQL."""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from models.database import Database
from service.app import create_app
from service.http.logs import flush_logs
from tests.support import TEST_KEY, Api, flask_transport

POSTGRES_ADMIN = os.environ.get("AUTHZ_TEST_POSTGRES", "postgresql://127.0.0.1:5432/postgres")
TABLES = ("memberships", "accounts", "support_agents", "api_keys", "changes", "decisions", "checkpoints", "verifications")


def _postgres_reachable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0]


@contextmanager
def new_postgres_database(host: str | None = None, port: int | None = None) -> Iterator[str]:
    """Create a migrated database on the local PostgreSQL; yields its URL (through host:port if given); drops it."""
    problem = _postgres_reachable()
    if problem is not None:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN} ({problem}): PostgreSQL runs skipped")
    name = f"authz_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    Database(f"{base}/{name}").migrate()
    if host is not None:
        base = f"postgresql+psycopg://{host}:{port}"
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def new_database(kind: str, directory: Path) -> Iterator[str]:
    """A fresh, migrated database of `kind` ("sqlite" or "postgresql")."""
    if kind == "postgresql":
        with new_postgres_database() as url:
            yield url
        return
    url = f"sqlite:///{directory / f'authz-{uuid.uuid4().hex[:8]}.sqlite3'}"
    Database(url).migrate()
    yield url


@pytest.fixture(scope="session")
def postgres_database():
    """A database created for this test session on the local PostgreSQL, dropped at the end."""
    with new_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "authz.sqlite3"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    with sqlite3.connect(path) as connection:  # fold the WAL into the file, so copying the file copies everything
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _empty_postgres(url: str) -> None:
    db = Database(url)
    with db.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
        connection.execute(text("UPDATE revision_counter SET revision = 0"))
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, sqlite_template) -> str:
    """An empty, migrated database: a fresh SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        path = tmp_path / "authz.sqlite3"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    return url


@pytest.fixture
def app(database_url):
    app = create_app({"DATABASE_URL": database_url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False})
    yield app
    runtime = app.extensions["authz"]
    runtime.close()


@pytest.fixture
def api(app) -> Api:
    return Api(flask_transport(app.test_client()))


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """After each test and its fixtures: collect the cycles it left, then freeze what survives (`gc.freeze`).

    What the suite keeps alive grows to millions of objects (hypothesis's examples, modules' caches, the
    apps' policies), and a full collection of them paused the process for one to two seconds inside
    whichever test was running: longer than the timeouts some tests check. Frozen objects are never
    scanned again, so a collection only ever costs what the running test allocated.
    """
    yield
    flush_logs()  # the request lines it made, while its output is still captured
    gc.collect()
    gc.freeze()
