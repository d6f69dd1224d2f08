"""The OpenAPI description of the public API, served at `/openapi.json`.

Written by hand next to the endpoints it describes (it is small). The fuzzing tests run
schemathesis against a live server with this very document, so a drift between the two, or
any input that makes the server fail, fails the suite.
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server import __version__
from server.web import refusals


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _error(description: str, *, retry_after: bool = False, html: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json("Error")}
    if html:  # the no-JavaScript form gets the widget page back instead
        response["content"]["text/html"] = {"schema": {"type": "string"}}
    if retry_after:
        response["headers"] = {
            "Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait"}
        }
    return response


_TEXT = {"schema": {"type": "string"}}

# What each refusal of the sign endpoint means, for the document; its status comes from the one
# table that the endpoint answers with (`refusals.SIGN_REFUSALS`).
_SIGN_MEANINGS = {
    400: (
        "Bad token or body; with `expired_token`, `token` is a renewed one that may be sent "
        "again at once (it keeps the time the form was first issued)"
    ),
    403: "The petition is closed",
    409: "The token was used by someone else",
    413: "Body too large",
    415: "Not JSON nor a form",
    422: "Invalid fields, all of them at once",
    429: "Too many signatures",
    503: "Storage unavailable",
}
_RETRY_AFTER = ("token_too_fresh", "rate_limited", "storage_unavailable")


def _sign_refusals(html: dict[str, Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for status, codes in refusals.SIGN_REFUSALS.items():
        description = f"{_SIGN_MEANINGS[status]} (`error`: {', '.join(codes)})"
        if status == 422:
            answers[str(status)] = {
                "description": description,
                "content": {**_json("FieldErrors"), **html},
            }
            continue
        retry_after = any(code in _RETRY_AFTER for code in codes)
        answers[str(status)] = _error(description, html=True, retry_after=retry_after)
        if "challenge_required" in codes:  # that one carries a fresh token and challenge
            answers[str(status)]["content"]["application/json"]["schema"] = {
                "anyOf": [
                    {"$ref": "#/components/schemas/Error"},
                    {"$ref": "#/components/schemas/ChallengeRequired"},
                ]
            }
    return answers


_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_LANG = {
    "name": "lang",
    "in": "query",
    "required": False,
    "description": "A language of the petition (else Accept-Language, else its own).",
    "schema": {"type": "string"},
}
_PARTNER = {
    "name": "partner",
    "in": "query",
    "required": False,
    "description": "The partner code from the embed snippet.",
    "schema": {"type": "string"},
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            # With `expired_token` only: a renewed token to send again with at once.
            "token": {"type": "string"},
        },
    },
    "FieldErrors": {
        "type": "object",
        "required": ["error", "errors"],
        "properties": {
            "error": {"const": "invalid_fields"},
            "message": {"type": "string"},
            "errors": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Token": {
        "type": "object",
        "required": ["token", "expires_in"],
        "properties": {
            "token": {"type": "string"},
            "expires_in": {"type": "integer"},
            "challenge": {"$ref": "#/components/schemas/Challenge"},
        },
    },
    "Challenge": {
        "type": "object",
        "description": (
            "Present while the petition asks for a proof of work (docs/challenge.md): find the "
            "whole number n from 0 to maxnumber for which the lower-case hex SHA-256 of salt "
            "followed by n in decimal is challenge, and send it as challenge_solution with "
            "this token. Bound to this token: it solves nothing else."
        ),
        "required": ["algorithm", "challenge", "salt", "maxnumber", "signature", "expires"],
        "properties": {
            "algorithm": {"const": "SHA-256"},
            "challenge": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "salt": {"type": "string", "description": "ASCII, 32 characters"},
            "maxnumber": {"type": "integer", "minimum": 1, "description": "200,000 today"},
            "signature": {
                "type": "string",
                "description": "Our HMAC of challenge (as ALTCHA has it); nothing to check",
            },
            "expires": {"type": "integer", "description": "Unix time: the token's expiry"},
        },
    },
    "ChallengeRequired": {
        "type": "object",
        "description": "A missing or wrong challenge_solution: a fresh token and its challenge",
        "required": ["error", "message", "token", "expires_in", "challenge"],
        "properties": {
            "error": {"const": "challenge_required"},
            "message": {"type": "string"},
            "token": {"type": "string"},
            "expires_in": {"type": "integer"},
            "challenge": {"$ref": "#/components/schemas/Challenge"},
        },
    },
    "Signed": {
        "type": "object",
        "required": ["status", "signatures", "withdraw_url"],
        "additionalProperties": False,
        "properties": {
            "status": {"const": "signed"},
            "signatures": {"type": "integer", "minimum": 0},
            "withdraw_url": {"type": "string", "format": "uri"},
        },
    },
    "ConfirmationSent": {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"const": "confirmation_sent"}},
    },
    "Update": {
        "type": "object",
        "required": ["date", "kind", "html"],
        "properties": {
            "date": {"type": "string", "format": "date"},
            "kind": {"enum": ["update", "correction"]},
            "html": {"type": "string"},
        },
    },
    "Petition": {
        "type": "object",
        "required": [
            *("slug", "lang", "languages", "title", "summary", "target"),
            *("goal", "signatures", "status", "updated_at"),
        ],
        "properties": {
            "slug": {"type": "string"},
            "lang": {"type": "string"},
            "languages": {"type": "array", "items": {"type": "string"}},
            "title": {"type": "string"},
            "summary": {"type": "string"},
            "target": {"type": "string"},
            "statement_html": {"type": "string"},
            "body_html": {"type": "string"},
            "updates": {"type": "array", "items": {"$ref": "#/components/schemas/Update"}},
            "legal_notice": {"type": "string"},
            "organiser": {"type": "string"},
            "goal": {"type": "integer", "minimum": 1},
            "signatures": {"type": "integer", "minimum": 0},
            "status": {"enum": ["open", "closed"]},
            "updated_at": {"type": "string", "format": "date-time"},
            "form": {"type": "object"},
            "widget_url": {"type": "string"},
            "sign_url": {"type": "string"},
            "by_country": {
                "type": "array",
                "description": "Counted signatures by country: only when the petition file "
                "says `[public] by_country = true`, or with an access key. A cell under 10 is "
                '`"signatures": null, "fewer_than": 10`, except for the owner\'s key.',
                "items": {"$ref": "#/components/schemas/CountryCell"},
            },
            "by_language": {
                "type": "array",
                "description": "With an access key: counted signatures by the form's language, "
                "cells as in `by_country`.",
                "items": {"$ref": "#/components/schemas/LanguageCell"},
            },
        },
    },
    "CountryCell": {
        "type": "object",
        "required": ["country", "signatures"],
        "additionalProperties": False,
        "properties": {
            "country": {
                "type": ["string", "null"],
                "description": "ISO 3166-1 alpha-2; null: signers who gave no country",
            },
            "signatures": {"type": ["integer", "null"], "minimum": 0},
            "fewer_than": {"const": 10},
        },
    },
    "LanguageCell": {
        "type": "object",
        "required": ["lang", "signatures"],
        "additionalProperties": False,
        "properties": {
            "lang": {"type": "string"},
            "signatures": {"type": ["integer", "null"], "minimum": 0},
            "fewer_than": {"const": 10},
        },
    },
    "SignatureRequest": {
        "type": "object",
        "required": ["token", "name", "email"],
        "properties": {
            "token": {"type": "string", "description": "From the token endpoint or the widget"},
            "name": {"type": "string", "maxLength": 120},
            "email": {"type": "string", "maxLength": 254},
            # Optional fields: null, like an empty string, counts as not given.
            "country": {"type": ["string", "null"], "description": "ISO 3166-1 alpha-2"},
            "comment": {"type": ["string", "null"], "maxLength": 1000},
            # A form's checkbox is "on" or absent; null counts as absent, as in JSON.
            "consent_organiser": {"type": ["boolean", "string", "null"]},
            "consent_partner": {"type": ["boolean", "string", "null"]},
            "challenge_solution": {
                "type": ["string", "integer", "null"],
                "description": "The number that solves the token's challenge, while one is "
                "asked for (see Challenge); ignored otherwise",
            },
            # Kept only where the petition offers the box (`[form] name_to_target`).
            "consent_name_to_target": {"type": ["boolean", "string", "null"]},
            "lang": {
                "description": "The language for messages; anything but a known language code "
                "is ignored (the token's language counts)",
            },
        },
    },
    "Count": {
        "type": "object",
        "required": ["signatures", "goal", "status"],
        "additionalProperties": False,
        "properties": {
            "signatures": {"type": "integer", "minimum": 0},
            "goal": {"type": "integer", "minimum": 1, "description": "The goal shown"},
            "status": {"enum": ["open", "closed"]},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "oldest_unsent_mail_s"],
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "problems": {"type": "object", "additionalProperties": {"type": "string"}},
            "oldest_unsent_mail_s": {
                "type": ["integer", "null"],
                "description": "Seconds the oldest mail still to send has waited (null: none). "
                "A backlog never makes the server unhealthy.",
            },
        },
    },
}


@functools.cache
def document() -> dict[str, Any]:
    signature_body = {"$ref": "#/components/schemas/SignatureRequest"}
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "petition-widget",
            "version": __version__,
            "description": "Read petitions and their live counts, get form tokens, sign.",
        },
        "paths": {
            "/api/petitions/{slug}": {
                "get": {
                    "summary": "A petition with its exact count",
                    "description": "With an access key, also the per-partner breakdown the "
                    "key may see (`partners`, and for owners `without_partner`), and "
                    "`by_country` and `by_language` (an owner's of every signer, exact; a "
                    "partner's of its own signers, cells under 10 shown as `fewer_than`).",
                    "parameters": [_SLUG, _LANG],
                    "security": [{}, {"accessKey": []}],
                    "responses": {
                        "200": {"description": "The petition", "content": _json("Petition")},
                        "304": {"description": "Unchanged since the ETag sent"},
                        "401": _error("A wrong access key (only when one is sent)"),
                        "403": _error("The key does not open this petition"),
                        "404": _error("No such petition"),
                        "429": _error(
                            "Too many wrong keys from this address: the key is not checked "
                            "(only when one is sent)",
                            retry_after=True,
                        ),
                        "503": _error(
                            "Storage unavailable while checking a key (only when one is sent)",
                            retry_after=True,
                        ),
                    },
                }
            },
            "/api/petitions/{slug}/token": {
                "get": {
                    "summary": "A signed, single-use form token",
                    "parameters": [_SLUG, _PARTNER, _LANG],
                    "responses": {
                        "200": {"description": "A token", "content": _json("Token")},
                        "404": _error("No such petition"),
                        "429": _error("Too many requests", retry_after=True),
                    },
                }
            },
            "/api/petitions/{slug}/signatures": {
                "post": {
                    "summary": "Sign a petition",
                    "parameters": [_SLUG],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": signature_body},
                            "application/x-www-form-urlencoded": {"schema": signature_body},
                        },
                    },
                    "responses": {
                        "201": {
                            "description": (
                                "Signed, on a petition whose signatures count at once (also "
                                "when this person had signed before). `signatures` is the "
                                "count published before the request, plus one; "
                                "`withdraw_url` withdraws the signature this request made "
                                "(a link that removes nothing when it made none)."
                            ),
                            "content": _json("Signed"),
                        },
                        "202": {
                            "description": (
                                "Accepted, on a petition that confirms signatures by email: "
                                "the same bytes for every accepted submission (first, repeat, "
                                "retry, or none at all); the signature counts once confirmed "
                                "from the mail."
                            ),
                            "content": _json("ConfirmationSent"),
                        },
                        "303": {
                            "description": (
                                "Accepted, for a form post that asks for HTML (a browser "
                                "without JavaScript): `Location` is the thank-you page's own "
                                "address, which holds no signer data and is the same for "
                                "every accepted submission"
                            ),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        },
                        **_sign_refusals(html),
                        "404": _error("No such petition"),
                        "408": _error("The body arrived too slowly", html=True),
                    },
                }
            },
            "/badge/{slug}.svg": {
                "get": {
                    "summary": 'A count badge: "12,345 signed of 50,000"',
                    "parameters": [_SLUG, _LANG],
                    "responses": {
                        "200": {"description": "SVG", "content": {"image/svg+xml": _TEXT}},
                        "304": {"description": "Unchanged since the ETag sent"},
                        "404": {
                            "description": "No such petition",
                            "content": {"text/plain": _TEXT},
                        },
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Whether the database answers and takes writes",
                    "responses": {
                        "200": {"description": "Healthy", "content": _json("Health")},
                        "503": {"description": "Unhealthy", "content": _json("Health")},
                    },
                }
            },
            "/widget/{slug}": {
                "get": {
                    "summary": "The widget document (inside the embed's iframe)",
                    "parameters": [_SLUG, _PARTNER, _LANG],
                    "responses": {
                        "200": {"description": "HTML", "content": html},
                        "404": {"description": "No such petition", "content": html},
                    },
                }
            },
            "/widget/{slug}/count": {
                "get": {
                    "summary": "The live count alone, which open widgets poll",
                    "description": "Send the `ETag` of the last answer as `If-None-Match`: "
                    "`304` without a body while none of the three fields has changed. `goal` "
                    "is the goal shown (with `auto_goal`, the step above the count). Readable "
                    "from any site (`Access-Control-Allow-Origin: *`, with an `OPTIONS` "
                    "preflight that allows `If-None-Match`); caches may serve it stale while "
                    "they revalidate or while the server fails.",
                    "parameters": [_SLUG],
                    "responses": {
                        "200": {"description": "The count", "content": _json("Count")},
                        "304": {"description": "Unchanged since the ETag sent"},
                        "404": {"description": "No such petition", "content": html},
                    },
                }
            },
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"accessKey": {"type": "http", "scheme": "bearer"}},
        },
    }


async def openapi(request: Request) -> JSONResponse:
    headers = {"Access-Control-Allow-Origin": "*"}
    return JSONResponse(document(), headers=headers)


routes = [Route("/openapi.json", openapi, methods=["GET"])]
