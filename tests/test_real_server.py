"""The contract against the real server: granian with several workers, over HTTP, on both databases."""

from __future__ import annotations

import pytest
import requests

from tests import test_story
from tests.servers import running_server
from tests.support import Api, http_transport


@pytest.fixture
def server_api(database_url):
    with running_server(database_url, workers=2) as base:
        yield Api(http_transport(base, requests.Session()))


def test_the_story_over_real_http(server_api):
    test_story.test_the_partner_pays_for_the_client_then_stops(server_api)


def test_a_multi_account_partner_over_real_http(server_api):
    test_story.test_a_partner_manages_many_client_accounts(server_api)


def test_operations_over_real_http(server_api):
    assert server_api.get("/healthz").json == {"status": "ok"}
    assert server_api.get("/readyz").status == 200
    metrics = server_api.get("/metrics").raw.decode()
    assert "authz_requests_total" in metrics
    assert server_api.get("/openapi.json").json["paths"]
    assert server_api.post("/v1/authorize", raw=b"{").status == 400


def test_a_chunked_body_over_the_limit_is_a_413_not_a_truncated_body(tmp_path):
    """Without a Content-Length, the WSGI layer cuts a body off silently: it must still be refused as too large."""
    from tests.servers import served
    from tests.support import TEST_KEY

    def chunks(size: int):
        yield b'{"x": "'
        for _ in range(size // 10_000):
            yield b"a" * 10_000
        yield b'"}'

    headers = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
    with served(f"sqlite:///{tmp_path / 'authz.sqlite3'}", workers=1) as server:
        too_large = requests.post(server.base + "/v1/authorize", data=chunks(1_200_000), headers=headers)
        assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "body_too_large"
        small = requests.post(server.base + "/v1/authorize", data=chunks(20_000), headers=headers)
        assert small.status_code == 400 and "x" in small.json()["error"]["message"]  # read whole, refused by the schema
