"""Reading a request body safely: a size cap enforced while receiving, strict UTF-8, and JSON
or form decoding into one flat mapping of fields (the time a body may take is bounded by the
protocol, `protocol.GuardedHttpToolsProtocol`).

Starlette reads bodies whole and decodes forms leniently (bad UTF-8 becomes U+FFFD), so the
sign endpoint reads through here instead.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from starlette.requests import ClientDisconnect, Request

from server.domain.errors import Refusal
from server.web import refusals

MAX_FIELDS = 50


class PayloadError(Refusal):
    """A body we refuse; its `code` goes into the error response, and `status` comes from the
    one table of refusals."""

    def __init__(self, code: str) -> None:
        super().__init__(code)

    @property
    def status(self) -> int:
        return refusals.status_of(self.code)


def kind(request: Request) -> str:
    """'json', 'form', or '' for a content type we do not take."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return "json"
    if media_type == "application/x-www-form-urlencoded":
        return "form"
    return ""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes: before reading when `Content-Length`
    says so, else while receiving (a chunked body declares nothing). How long a body may take
    is bounded by the protocol (`protocol.GuardedHttpToolsProtocol`)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):  # `²` is a digit to isdigit()
            raise PayloadError("invalid_body")
        if int(declared) > limit:
            raise PayloadError("body_too_large")
    body = b""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > limit:
            raise PayloadError("body_too_large")
        if not message.get("more_body", False):
            return body


async def read_fields(request: Request, limit: int) -> dict[str, Any]:
    """The submitted fields of a JSON object or a urlencoded form."""
    form_or_json = kind(request)
    if not form_or_json:
        raise PayloadError("unsupported_media_type")
    body = await read_body(request, limit)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("invalid_encoding") from None
    if form_or_json == "json":
        return decode_json(text)
    return decode_form(text)


def decode_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise PayloadError("invalid_json") from None
    if not isinstance(value, dict):
        raise PayloadError("invalid_json")
    return value


def decode_form(text: str) -> dict[str, Any]:
    try:
        pairs = urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, errors="strict",
            max_num_fields=MAX_FIELDS,
        )  # fmt: skip
    except UnicodeDecodeError:  # percent-escapes that are not UTF-8
        raise PayloadError("invalid_encoding") from None
    except ValueError:  # too many fields
        raise PayloadError("invalid_body") from None
    fields: dict[str, Any] = {}
    for name, value in pairs:
        fields.setdefault(name, value)  # the first of repeated fields counts
    return fields
