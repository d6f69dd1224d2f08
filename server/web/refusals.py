"""Which HTTP status answers which refusal: one table, read by the endpoints and by the OpenAPI
document, so the two cannot disagree.

The domain names a refusal by its code (`server.domain.errors.Refusal.code`); only the web
layer knows that an expired token is a `400` and a closed petition a `403`.
"""

from __future__ import annotations

#: Every refusal of the sign endpoint, by the status that answers it.
SIGN_REFUSALS: dict[int, tuple[str, ...]] = {
    400: (
        "invalid_token",
        "expired_token",
        "token_too_fresh",
        "wrong_petition",
        "challenge_required",
        "invalid_json",
        "invalid_encoding",
        "invalid_body",
    ),
    403: ("petition_closed",),
    409: ("token_used",),
    413: ("body_too_large",),
    415: ("unsupported_media_type",),
    422: ("invalid_fields",),
    429: ("rate_limited",),
    503: ("storage_unavailable",),
}

STATUS: dict[str, int] = {code: status for status, codes in SIGN_REFUSALS.items() for code in codes}


def status_of(code: str) -> int:
    """The status that answers a refusal; an unlisted code is a bad request."""
    return STATUS.get(code, 400)
