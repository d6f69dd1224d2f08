"""Form tokens: signed, timed, single-use tickets that a signature must carry.

A token is issued with the form (in the widget document, or by `GET .../token`) and names the
petition, the partner whose page showed the form, the language of the texts the signer read, and
a random nonce. It is signed with itsdangerous (HMAC-SHA256, one salt for this purpose only),
so the client can read but not change it: attribution cannot be edited after the fact.
A token is valid from `min_age` seconds (a faster submit is a bot) to `lifetime` seconds after
issue. Single use is enforced by storage: the nonce is recorded with the signature under a
unique constraint.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TypeGuard

from itsdangerous import (
    BadData,
    SignatureExpired,
    TimestampSigner,
    URLSafeTimedSerializer,
    want_bytes,
)

from server.domain.errors import Refusal

SALT = "petition-widget.form-token"
MAX_TOKEN_LENGTH = 512  # ours are about 150 characters; longer ones are not worth decoding


@dataclasses.dataclass(frozen=True)
class Claims:
    petition: str
    partner: str  # the code from the embed snippet, as given ("" when none)
    lang: str
    nonce: str
    issued_at: int


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

        derived: dict[bytes, bytes] = {}

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

            def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
                # The same few keys every time: derive each once, not on every token.
                raw = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
                if raw not in derived:
                    derived[raw] = super().derive_key(raw)
                return derived[raw]

        # itsdangerous signs with the last key; our setting lists the signing key first.
        keys = list(reversed(secret_keys))
        self._serializer = URLSafeTimedSerializer(
            keys, salt=SALT, signer=_Signer, signer_kwargs={"digest_method": hashlib.sha256}
        )
        # One signer, built once (the serializer builds one per call): it verifies with every
        # key and signs with the last.
        self._signer = _Signer(keys, salt=SALT, digest_method=hashlib.sha256)

    def issue(self, petition: str, partner: str = "", lang: str = "") -> str:
        nonce = secrets.token_urlsafe(12)
        payload = self._serializer.dump_payload([petition, partner, lang, nonce])
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
        return _claims(payload, signed_at)

    def verify(self, token: object, petition: str) -> Claims:
        """The claims of a token for `petition`, or a `TokenError` saying why not (carrying the
        claims when the token is genuine but expired, too fresh or another petition's)."""
        if not _well_formed(token) or not token:
            raise TokenError("invalid_token")
        try:
            value, signed_at = self._signer.unsign(
                token, max_age=self.lifetime, return_timestamp=True
            )
            payload = self._serializer.load_payload(value)
        except SignatureExpired as exc:
            expired = ExpiredToken("expired_token")
            expired.claims = self._expired_claims(exc)
            raise expired from None
        except BadData:
            raise TokenError("invalid_token") from None
        claims = _claims(payload, signed_at)
        if claims is None:
            raise TokenError("invalid_token")
        if claims.petition != petition:
            wrong = WrongPetition("wrong_petition")
            wrong.claims = claims
            raise wrong
        age = int(self._clock()) - claims.issued_at
        if age < self.min_age:
            fresh = TokenTooFresh(retry_after=self.min_age - age)
            fresh.claims = claims
            raise fresh
        return claims

    def _expired_claims(self, exc: SignatureExpired) -> Claims | None:
        if exc.payload is None or exc.date_signed is None:
            return None
        try:
            payload = self._serializer.load_payload(exc.payload)
        except BadData:
            return None
        return _claims(payload, exc.date_signed)


def _claims(payload: object, signed_at: datetime.datetime) -> Claims | None:
    """A decoded payload as claims, or None when it is not the shape we issue."""
    if not (isinstance(payload, list) and len(payload) == 4):
        return None
    if not all(isinstance(part, str) for part in payload):
        return None
    slug, partner, lang, nonce = payload
    return Claims(slug, partner, lang, nonce, int(signed_at.timestamp()))


def _well_formed(token: object) -> TypeGuard[str]:
    """A string that could be one of ours. Ours are ASCII; anything else (a lone surrogate
    makes itsdangerous' UTF-8 encoding raise, not refuse) is refused before decoding."""
    return isinstance(token, str) and len(token) <= MAX_TOKEN_LENGTH and token.isascii()
