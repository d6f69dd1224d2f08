"""Fuzzing the public API with schemathesis, on a live server, on both backends: whatever the
generated input, no 5xx, and every answer matches the OpenAPI document the server publishes."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from server.domain.form_tokens import FormTokens
from server.web import openapi
from tests.support import live

SLUG = "save-russian-lgbt-network"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
]


def _with_examples() -> dict[str, Any]:
    """The published document, plus an example slug that exists, so that the fuzzer reaches
    the petition and not only 404s."""
    document = copy.deepcopy(openapi.document())
    for path in document["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "slug":
                    parameter["schema"] = {"type": "string", "examples": [SLUG]}
                    parameter["examples"] = {"petition": {"value": SLUG}}
    return document


schema = schemathesis.openapi.from_dict(_with_examples())
minter = FormTokens([live.SECRET], lifetime=7200, min_age=0)


def test_the_server_publishes_this_document(client: httpx.Client) -> None:
    assert client.get("/openapi.json").json() == openapi.document()


def positive(case: schemathesis.Case[Any]) -> bool:
    """Whether schemathesis generated `case` to be valid (it expects invalid ones refused)."""
    return case.meta is not None and case.meta.generation.mode.name == "POSITIVE"


# `case` is Any: its body is whichever JSON value the schema allows, and it is filled in below.
@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_and_keeps_its_schema(case: Any, server: live.LiveServer) -> None:
    token = case.body.get("token") if isinstance(case.body, dict) else None
    # A genuine token for half of the cases, so that fuzzed fields reach validation instead of
    # stopping at "invalid_token"; for half of those also a valid name and email, so that the
    # fuzzed country, comment and consents reach storage too.
    if isinstance(token, str) and len(token) % 2 == 0:
        case.body["token"] = minter.issue(case.path_parameters.get("slug", SLUG))
        if len(token) % 4 == 0 and positive(case):  # a negative case keeps its bad fields
            case.body.update(live.new_signer("-fuzz"))
    response = case.call_and_validate(base_url=server.base_url, checks=CHECKS, timeout=30)
    if response.status_code == 201:
        SIGNED.append(case.path_parameters.get("slug", ""))


SIGNED: list[str] = []  # the petitions of fuzzed signatures that were stored


def test_fuzzed_signatures_reached_storage() -> None:
    """Runs after the fuzzing above (pytest keeps a file's order): some generated signatures
    were stored, so the fuzzer did not stop at validation."""
    assert SIGNED, "no fuzzed signature reached storage"
