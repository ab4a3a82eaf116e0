"""schemathesis against the control plane's own OpenAPI spec, with a valid token and bounded
examples per operation: no 5xx, responses match their documented schemas and content types.

Driven through schemathesis's Python API (each operation's Hypothesis strategy) rather than
its pytest plugin, whose lazy-fixture loader does not run under this pytest.
"""

from __future__ import annotations

import pytest

from tests import test_server_support as support

schemathesis = pytest.importorskip("schemathesis")

# Fixtures shared by the control-plane tests (see tests/test_server_support.py).
app, tokens = support.app, support.tokens

pytestmark = pytest.mark.slow
MAX_EXAMPLES = 12


def test_api_conforms_to_its_openapi_spec(app, tokens):
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
    )

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    auth = {"Authorization": f"Bearer {tokens['alice']}"}
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    failures: list[str] = []
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tested.append(f"{operation.method.upper()} {operation.path}")

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:
            case.call_and_validate(headers=auth, checks=checks)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{tested[-1]}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert len(tested) >= 20, tested
    assert not failures, "\n\n".join(failures)
