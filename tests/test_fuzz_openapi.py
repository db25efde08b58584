"""API fuzzing with schemathesis, from the service's own /openapi.json.

For every operation the document describes: positive cases (valid by the
schema) and negative ones (invalid on purpose), a bounded number each,
against the in-process app on a SQLite store seeded with the story. Every
answer must have a documented status and content type, a body matching the
documented schema, and never be a 5xx. Failures are collected for every
operation and reported together.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import text

from service.app import create_app
from tests.support import TEST_KEY, Api, flask_transport

MAX_EXAMPLES = 30
AUTHORIZATION = {"Authorization": f"Bearer {TEST_KEY}"}


def excused_checks(response) -> list:
    """Every check runs but the one that schema-valid data is accepted: a valid request may still be refused
    for the state it meets (a revision not reached, a page token not issued), for a rule between two
    parameters, or for a rule of the input grammar a JSON Schema pattern states only approximately to the
    generators (SPEC "Strict input"). Every answer must still be documented, and never a 5xx."""
    return [positive_data_acceptance]


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz")
    app = create_app({"DATABASE_URL": f"sqlite:///{directory}/authz.sqlite3", "AUTHZ_PRESHARED_KEY": TEST_KEY})
    seed(app)
    yield app
    app.extensions["authz"].close()


def seed(app) -> None:
    api = Api(flask_transport(app.test_client()))
    api.create_account("acc_1", "u_1")
    api.invite("acc_1", "u_2", "payment_manager")
    api.put("/v1/support-agents/u_3")


def start_over(app) -> None:
    """Empty the facts (not the log) and make the fact cache start over, then seed again."""
    runtime = app.extensions["authz"]
    with runtime.db.engine.begin() as connection:
        for table in ("memberships", "accounts", "support_agents"):
            connection.execute(text(f"DELETE FROM {table}"))
    with runtime.cache.lock:
        runtime.cache.revision = -1
    seed(app)


@pytest.fixture(scope="module")
def openapi_schema(fuzzed_app):
    config = schemathesis.Config.from_dict({"headers": AUTHORIZATION})
    return schemathesis.openapi.from_wsgi("/openapi.json", fuzzed_app, config=config)


def test_every_operation_answers_as_documented(openapi_schema):
    failures = []
    operations = 0
    for result in openapi_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def fuzz(case):
                response = case.call(headers=AUTHORIZATION)
                case.validate_response(response, excluded_checks=excused_checks(response))

            try:
                fuzz()
            except Unsatisfiable:  # no input of this operation can be invalid (no body, no parameter)
                assert mode is GenerationMode.NEGATIVE, operation.path
            except Exception as error:  # noqa: BLE001 - every operation's failure is collected
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {error}")
    assert operations >= 18
    assert not failures, "\n\n".join(failures)


def test_stateful_sequences_follow_the_documented_links(fuzzed_app, openapi_schema):
    """Create an account, then invite, change roles, remove, change settings, as the links say."""

    class Sequences(openapi_schema.as_state_machine()):
        def setup(self):
            start_over(fuzzed_app)  # every sequence starts from the same facts, so a replay is a replay

        def get_call_kwargs(self, case):
            return {"headers": AUTHORIZATION}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response, additional_checks=additional_checks, excluded_checks=excused_checks(response),
                transport_kwargs=kwargs or None, recorder=self.recorder,
            )

    Sequences.run(
        settings=settings(
            max_examples=MAX_EXAMPLES, stateful_step_count=8, deadline=None,
            suppress_health_check=list(HealthCheck), database=None,
        )
    )
