"""Decoding a signature's body: any text at all gives fields or a clean 400, never an error of
another kind, and whatever decodes then validates to a signer or to field errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from server.domain.validation import FieldErrors, validate_signer
from server.web.payloads import MAX_FIELDS, PayloadError, decode_form, decode_json, read_body
from tests.domain.test_validation import json_values


def signer_or_field_errors(fields: dict[str, Any]) -> None:
    try:
        signer = validate_signer(fields, country="optional", comment="optional")
    except FieldErrors as exc:
        assert exc.errors
    else:
        assert signer.name and "@" in signer.email


@given(st.text(max_size=400))
def test_any_text_as_json(text: str) -> None:
    try:
        fields = decode_json(text)
    except PayloadError as exc:
        assert (exc.status, exc.code) == (400, "invalid_json")
        return
    assert isinstance(fields, dict)
    signer_or_field_errors(fields)


@given(json_values)
def test_any_json_document(value: Any) -> None:
    try:
        fields = decode_json(json.dumps(value))
    except PayloadError as exc:
        assert not isinstance(value, dict) and exc.status == 400
        return
    assert fields.keys() == value.keys()  # (NaN is not equal to itself, so not `==`)
    signer_or_field_errors(fields)


@given(st.text(max_size=400))
def test_any_text_as_a_form(text: str) -> None:
    try:
        fields = decode_form(text)
    except PayloadError as exc:
        assert exc.status == 400 and exc.code in ("invalid_encoding", "invalid_body")
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    signer_or_field_errors(fields)


def test_deep_json_is_a_400_not_a_crash() -> None:
    with pytest.raises(PayloadError):
        decode_json("[" * 100_000 + "]" * 100_000)


def test_a_form_with_too_many_fields_is_a_400() -> None:
    with pytest.raises(PayloadError) as refused:
        decode_form("&".join(f"f{i}=x" for i in range(MAX_FIELDS + 1)))
    assert refused.value.code == "invalid_body"


def test_the_first_of_repeated_form_fields_counts() -> None:
    assert decode_form("name=Ann&name=Bob&email=a%40example.org") == {
        "name": "Ann",
        "email": "a@example.org",
    }


@pytest.mark.parametrize("declared", ["²", "1²", "¹²³", "-1", "1e3", ""])
def test_a_content_length_of_other_digits_is_a_400_not_a_crash(declared: str) -> None:
    """`²` passes `str.isdigit()` and then `int()` raises: the server must never get that far
    (uvicorn's parser refuses such a header before us, but the check must not rely on it).
    Header bytes are latin-1, where `²` is one byte."""
    scope = {"type": "http", "headers": [(b"content-length", declared.encode("latin-1"))]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    with pytest.raises(PayloadError) as refused:
        asyncio.run(read_body(Request(scope, receive), 1000))
    assert (refused.value.status, refused.value.code) == (400, "invalid_body")
