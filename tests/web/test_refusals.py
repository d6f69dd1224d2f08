"""The one table of refusal -> status: every refusal the sign endpoint can give is in it, and
the OpenAPI document reads its statuses from it."""

from __future__ import annotations

import re
from pathlib import Path

from server.domain import errors, form_tokens
from server.domain.validation import FieldErrors
from server.web import openapi, refusals

SERVER = Path(__file__).resolve().parents[2] / "server"


def _raised_codes() -> set[str]:
    """Every refusal code written in the server's source: PayloadError("..."), Refusal("..."),
    and the `code = "..."` of the refusal classes."""
    codes: set[str] = set()
    for path in SERVER.rglob("*.py"):
        text = path.read_text()
        codes.update(re.findall(r'(?:PayloadError|Refusal|TokenError)\("([a-z_]+)"', text))
    for module in (errors, form_tokens):
        for value in vars(module).values():
            is_refusal = isinstance(value, type) and issubclass(value, errors.Refusal)
            if is_refusal and value is not errors.Refusal:
                codes.add(value.code)
    codes.add(FieldErrors.code)
    return codes


def test_every_refusal_has_a_status_in_the_table() -> None:
    missing = _raised_codes() - set(refusals.STATUS)
    assert not missing, f"refusals without a status: {sorted(missing)}"


def test_the_table_gives_the_documented_statuses() -> None:
    assert refusals.status_of("petition_closed") == 403
    assert refusals.status_of("token_used") == 409
    assert refusals.status_of("invalid_fields") == 422
    assert refusals.status_of("expired_token") == 400
    assert refusals.status_of("storage_unavailable") == 503


def test_openapi_lists_every_refusal_under_its_status() -> None:
    document = openapi.document()
    answers = document["paths"]["/api/petitions/{slug}/signatures"]["post"]["responses"]
    for status, codes in refusals.SIGN_REFUSALS.items():
        description = answers[str(status)]["description"]
        for code in codes:
            assert code in description, (status, code)
