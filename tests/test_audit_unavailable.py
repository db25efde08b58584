"""The auditor pages fail closed: with the database unreadable they answer 503, never possibly stale data."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.exc import OperationalError

from models.errors import Unavailable
from service.app import create_app
from tests.audit_html import PAGES, basic, page
from tests.conftest import new_postgres_database
from tests.proxy import CuttableProxy
from tests.support import TEST_KEY, Api, flask_transport


@pytest.fixture
def client(app):
    return app.test_client()


def test_an_unreadable_database_gives_a_503_page_not_stale_data(app, client, monkeypatch):
    runtime = app.extensions["authz"]

    def unavailable(*args, **kwargs):
        raise Unavailable("the database cannot be read: connection refused")

    monkeypatch.setattr(runtime.cache, "sync", unavailable)
    for path in PAGES:
        response = page(client, path, 503)
        assert "The database cannot be reached" in response.get_data(as_text=True)


def test_a_database_error_while_reading_gives_a_503_page(app, client, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(app.extensions["authz"].records, "status", broken)
    for path in ("/audit/", "/audit/changes"):
        assert "cannot be read" in page(client, path, 503).get_data(as_text=True)


def test_postgres_cut_off_gives_503_pages_then_they_come_back():
    """The database goes away for the service only (a TCP proxy is cut): every page is a 503, then recovers."""
    proxy = CuttableProxy("127.0.0.1", 5432)
    try:
        with new_postgres_database("127.0.0.1", proxy.port) as url:
            app = create_app({"DATABASE_URL": url, "AUTHZ_PRESHARED_KEY": TEST_KEY, "MIGRATE": False})
            try:
                _cut_off_and_back(app.test_client(), proxy)
            finally:
                app.extensions["authz"].close()
    finally:
        proxy.close()


def _cut_off_and_back(client, proxy: CuttableProxy) -> None:
    Api(flask_transport(client)).create_account("acc_b", "u_client")
    for path in PAGES:
        page(client, path)
    proxy.cut()
    time.sleep(1.0)  # the change listener notices within a second (see facts.PostgresWatcher)
    for path in PAGES:
        assert "The database cannot be reached" in page(client, path, 503).get_data(as_text=True)
    proxy.restore()
    deadline = time.monotonic() + 15
    while client.get("/audit/", headers=basic(TEST_KEY)).status_code != 200:
        assert time.monotonic() < deadline, "the pages did not come back within 15 s"
        time.sleep(0.1)
    page(client, "/audit/changes?account=acc_b")
