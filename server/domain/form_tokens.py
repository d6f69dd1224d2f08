"""Form tokens: signed, timed, single-use tickets that a signature must carry.

A token is issued with the form (in the widget document, or by `GET .../token`) and names the
petition, the partner whose page showed the form, the language of the texts the signer read, and
a random nonce. It is signed with itsdangerous (HMAC-SHA256, one salt for this purpose only),
so the client can read but not change it: attribution cannot be edited after the fact.
A token is valid from `min_age` seconds (a faster submit is a bot) until the expiry written
in it, `lifetime` seconds after issue: a token carries its own expiry, so raising
`TOKEN_LIFETIME` never lengthens the life of tokens already out (their nonces are purged when
the old lifetime ends, and a token that outlived its nonce could be used again). Tokens of the
first format, without an expiry, are held to the current `lifetime`.

The age is counted from `since`, in milliseconds, exactly (the signature's own timestamp is in
whole seconds, which made a 3 s minimum about 2 s). A form renewed after a refusal (an expired
token, field errors, a rate limit) carries the `since` of the form its visitor first got
(`issue(..., since=...)`), so a person who has already waited is never told "too fresh" again;
a bot gains nothing, as the chain starts with a token it had to wait for.

Single use is enforced by storage: the nonce is recorded with the signature under a unique
constraint.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TypeGuard

from itsdangerous import (
    BadData,
    TimestampSigner,
    URLSafeTimedSerializer,
    want_bytes,
)

from server.domain.errors import Refusal

SALT = "petition-widget.form-token"
ANSWER_SALT = "petition-widget.answered"  # the thank-you page's mark: another purpose, another salt
ANSWER_LIFETIME = 3600  # seconds a thank-you page's address shows the thank-you (then the form)
ANSWER_KINDS = ("signed", "check_email")
MAX_TOKEN_LENGTH = 512  # ours are about 150 characters; longer ones are not worth decoding


@dataclasses.dataclass(frozen=True)
class Claims:
    petition: str
    partner: str  # the code from the embed snippet, as given ("" when none)
    lang: str
    nonce: str
    issued_at: int  # whole seconds, from the signature
    expires_at: int  # whole seconds: the token's own expiry
    since: float  # seconds, to the millisecond: when its visitor first got a form


class TokenError(Refusal):
    """A token that must be refused. `code` is the API's error code; `claims` are the token's
    when it is genuine (expired, too fresh, another petition's), so a form can be shown again
    with the same partner and language without decoding the token a second time."""

    code = "invalid_token"
    claims: Claims | None = None


class ExpiredToken(TokenError):
    code = "expired_token"


class TokenTooFresh(TokenError):
    code = "token_too_fresh"

    def __init__(self, retry_after: int) -> None:
        super().__init__(self.code)
        self.retry_after = retry_after


class WrongPetition(TokenError):
    code = "wrong_petition"


class FormTokens:
    def __init__(
        self,
        secret_keys: Sequence[str],
        *,
        lifetime: int,
        min_age: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lifetime = lifetime
        self.min_age = min_age
        self._clock = clock

        derived: dict[tuple[bytes, bytes], bytes] = {}  # by salt and key: two purposes here

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

            def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
                # The same few keys every time: derive each once, not on every token.
                raw = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
                key = (want_bytes(self.salt), raw)
                if key not in derived:
                    derived[key] = super().derive_key(raw)
                return derived[key]

        # itsdangerous signs with the last key; our setting lists the signing key first.
        keys = list(reversed(secret_keys))
        self._serializer = URLSafeTimedSerializer(
            keys, salt=SALT, signer=_Signer, signer_kwargs={"digest_method": hashlib.sha256}
        )
        # One signer, built once (the serializer builds one per call): it verifies with every
        # key and signs with the last.
        self._signer = _Signer(keys, salt=SALT, digest_method=hashlib.sha256)
        self._answers = _Signer(keys, salt=ANSWER_SALT, digest_method=hashlib.sha256)

    def mark_answered(self, petition: str, kind: str) -> str:
        """The mark in the address of the page that answers an accepted no-JavaScript
        submission (Post/Redirect/Get): the petition, what the page shows (`ANSWER_KINDS`),
        the time, signed. It holds nothing of the signer, and every accepted submission of a
        petition gets the same one in the same second."""
        assert kind in ANSWER_KINDS
        return self._answers.sign(f"{kind}:{petition}").decode("ascii")

    def answered(self, mark: object, petition: str) -> str | None:
        """What a mark says for `petition` (`ANSWER_KINDS`) while it is less than
        `ANSWER_LIFETIME` old; None for anything else (then the page shows the form)."""
        if not _well_formed(mark):
            return None
        try:
            value = self._answers.unsign(mark, max_age=ANSWER_LIFETIME).decode()
        except BadData:
            return None
        kind, _, slug = value.partition(":")
        return kind if slug == petition and kind in ANSWER_KINDS else None

    def issue(
        self, petition: str, partner: str = "", lang: str = "", since: float | None = None
    ) -> str:
        """A new token. `since` is the first form's `Claims.since` when this one renews it
        after a refusal (never later than now); by default, now."""
        now = self._clock()
        nonce = secrets.token_urlsafe(12)
        expires_at = int(now) + self.lifetime
        # Rounded down: a `since` a fraction of a millisecond ahead of the clock would make even
        # a zero TOKEN_MIN_AGE "too fresh".
        since_ms = math.floor(1000 * (now if since is None else min(since, now)))
        payload = self._serializer.dump_payload(
            [petition, partner, lang, nonce, expires_at, since_ms]
        )
        return self._signer.sign(payload).decode("ascii")

    def peek(self, token: object) -> Claims | None:
        """The claims of a genuine token, even an expired or too fresh one, else None. Only for
        showing the same form again (same partner, same language), never for accepting it."""
        if not _well_formed(token):
            return None
        try:
            payload, signed_at = self._serializer.loads(token, return_timestamp=True)
        except BadData:
            return None
        return self._claims(payload, signed_at)

    def verify(self, token: object, petition: str, min_age: float = 0) -> Claims:
        """The claims of a token for `petition`, or a `TokenError` saying why not (carrying the
        claims when the token is genuine but expired, too fresh or another petition's).
        `min_age` asks for an older token than `self.min_age` (never a younger one): the
        no-JavaScript form's wait while a challenge is on."""
        if not _well_formed(token) or not token:
            raise TokenError("invalid_token")
        try:
            # The expiry is the token's own (below); the signature's timestamp is only read.
            value, signed_at = self._signer.unsign(token, return_timestamp=True)
            payload = self._serializer.load_payload(value)
        except BadData:
            raise TokenError("invalid_token") from None
        claims = self._claims(payload, signed_at)
        if claims is None:
            raise TokenError("invalid_token")
        now = self._clock()
        if now > claims.expires_at:
            expired = ExpiredToken("expired_token")
            expired.claims = claims
            raise expired
        if claims.petition != petition:
            wrong = WrongPetition("wrong_petition")
            wrong.claims = claims
            raise wrong
        age = now - claims.since
        minimum = max(self.min_age, min_age)
        if minimum > 0 and age < minimum:
            fresh = TokenTooFresh(retry_after=math.ceil(minimum - age))
            fresh.claims = claims
            raise fresh
        return claims

    def _claims(self, payload: object, signed_at: datetime.datetime) -> Claims | None:
        """A decoded payload as claims, or None when it is not a shape we issue: six parts
        (expiry and `since` in it), or the first format's four, which gets the current
        lifetime and its second-rounded issue time."""
        issued_at = int(signed_at.timestamp())
        if not isinstance(payload, list):
            return None
        if len(payload) == 4 and all(isinstance(part, str) for part in payload):
            slug, partner, lang, nonce = payload
            return Claims(
                slug, partner, lang, nonce, issued_at, issued_at + self.lifetime, issued_at
            )
        if len(payload) != 6 or not all(isinstance(part, str) for part in payload[:4]):
            return None
        slug, partner, lang, nonce, expires_at, since_ms = payload
        numbers = (expires_at, since_ms)
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
            return None
        return Claims(slug, partner, lang, nonce, issued_at, expires_at, since_ms / 1000)


def _well_formed(token: object) -> TypeGuard[str]:
    """A string that could be one of ours. Ours are ASCII; anything else (a lone surrogate
    makes itsdangerous' UTF-8 encoding raise, not refuse) is refused before decoding."""
    return isinstance(token, str) and len(token) <= MAX_TOKEN_LENGTH and token.isascii()
