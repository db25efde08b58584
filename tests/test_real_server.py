"""The contract against the real server: gunicorn with several workers, over HTTP, on both databases."""

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
