"""Sealed signer data, and the keyed hash that stands for an email address.

A seized server must not name its signers. So when the owner has given a public key
(`SEALING_PUBLIC_KEY`), a signer's name, email and comment, with the exact time, are written
only inside a sealed box made for that key (libsodium's `crypto_box_seal`: an ephemeral X25519
key and XSalsa20-Poly1305, through PyNaCl). The server keeps no secret that opens it: the
owner's secret key lives off the server, and exports are opened offline
(`petition-widget export-open`). A signer who ticked a partner's box gets a second box, sealed
for that partner's key, when the partner has one. Keys travel as base64 of their raw 32 bytes,
so any libsodium tool can open our boxes.

Deduplication needs no plaintext either: the normalised address becomes an HMAC-SHA256 under
`EMAIL_HASH_KEY` (`EmailHasher`), and so does every digest of an address the store keeps. With
the database alone, a list of known addresses matches nothing; with the database and that key,
it does (docs/privacy.md).

Pure: sealing is computation only (PyNaCl releases the GIL, so the writer runs it off the
event loop: `seal_group`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.secret

from server.domain.errors import PetitionWidgetError

KEY_BYTES = 32
RECORD_VERSION = 1
HOUR = 3600


class BadKey(PetitionWidgetError):
    """A key that is not base64 of 32 raw bytes, or a box it cannot open."""


def parse_public_key(text: str) -> nacl.public.PublicKey:
    """A public key from its base64 form; `BadKey` saying why not."""
    return nacl.public.PublicKey(_raw_key(text, "public"))


def parse_secret_key(text: str) -> nacl.public.PrivateKey:
    return nacl.public.PrivateKey(_raw_key(text, "secret"))


def _raw_key(text: str, kind: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"a {kind} key must be base64 of 32 bytes") from None
    if len(raw) != KEY_BYTES:
        raise BadKey(f"a {kind} key must be base64 of 32 bytes, not {len(raw)}")
    return raw


def encode_key(key: nacl.public.PublicKey | nacl.public.PrivateKey) -> str:
    return base64.b64encode(bytes(key)).decode()


def new_key_pair() -> tuple[str, str]:
    """(public, secret), each as base64 of its raw 32 bytes."""
    secret = nacl.public.PrivateKey.generate()
    return encode_key(secret.public_key), encode_key(secret)


def seal(record: Mapping[str, Any], key: nacl.public.PublicKey) -> str:
    """`record` as JSON in a sealed box for `key`, base64."""
    data = json.dumps({"v": RECORD_VERSION, **record}, ensure_ascii=False).encode()
    return base64.b64encode(nacl.public.SealedBox(key).encrypt(data)).decode()


def open_box(box: str, secret: nacl.public.PrivateKey) -> dict[str, Any]:
    """The record inside a box made by `seal`; `BadKey` when this key cannot open it."""
    try:
        data = nacl.public.SealedBox(secret).decrypt(base64.b64decode(box))
    except (nacl.exceptions.CryptoError, binascii.Error, ValueError):
        raise BadKey("this secret key does not open the sealed data") from None
    record: dict[str, Any] = json.loads(data)
    return record


def hour(timestamp: int) -> int:
    """A time rounded down to its hour: what stays in clear beside a sealed signature, as exact
    times next to a partner and a country could be matched against a partner site's logs."""
    return timestamp - timestamp % HOUR


def hour_after(timestamp: int) -> int:
    """A time rounded up to an hour: for expiries, which may run a little long."""
    return -(-timestamp // HOUR) * HOUR


@dataclasses.dataclass(frozen=True)
class EmailHasher:
    """HMAC-SHA256 under `EMAIL_HASH_KEY`: the one way an address (or its domain) is kept."""

    key: bytes = dataclasses.field(repr=False)

    def email_key(self, normalised: str) -> str:
        return hmac.new(self.key, b"email\x00" + normalised.encode(), hashlib.sha256).hexdigest()

    def domain_key(self, domain: str) -> str:
        return hmac.new(self.key, b"domain\x00" + domain.encode(), hashlib.sha256).hexdigest()

    def mail_tag(self, email_key: str) -> str:
        """What a queued mail keeps in clear of its signer (`email_key`, itself keyed): enough
        for `signatures remove` to find the signer's unsent mails, yet, being keyed again, no
        way for whoever holds the database alone to join a mail to its signature (which would
        give the signature the mail's times)."""
        return hmac.new(self.key, b"mail\x00" + email_key.encode(), hashlib.sha256).hexdigest()

    def event_tag(self, signature_id: str) -> str:
        """What a sealed server's queued `signature.counted` event keeps in clear of its
        signature (whose `signature_id` is in the event's box): a withdrawal finds and deletes
        its undelivered events by it, while whoever holds the database alone cannot join the
        event (and its times) to the signature."""
        return hmac.new(self.key, b"event\x00" + signature_id.encode(), hashlib.sha256).hexdigest()

    def seal_mail(self, secrets: Mapping[str, str]) -> str:
        """What a queued mail must hide until it is sent: its address ("to"), its links'
        tokens ("confirm", "withdraw"; a token opens its signer's name box, and withdraws or
        confirms) and the `ref` of its submission (in clear it would join the mail to its
        signature), encrypted under a key derived from this one, so the database's files
        (PostgreSQL's dead rows and WAL included) never hold them in clear. The mail job opens
        them just before sending."""
        data = json.dumps(dict(secrets), separators=(",", ":")).encode()
        return base64.b64encode(nacl.secret.SecretBox(self._address_key).encrypt(data)).decode()

    def open_mail(self, box: str) -> dict[str, str] | None:
        """The secrets of `seal_mail`, or None when this key does not open `box`. A box of the
        first sealed release holds the bare address: it comes back as {"to": address}."""
        try:
            data = nacl.secret.SecretBox(self._address_key).decrypt(base64.b64decode(box))
        except (nacl.exceptions.CryptoError, binascii.Error, ValueError):
            return None
        text = data.decode()
        try:
            opened = json.loads(text)
        except ValueError:
            opened = None
        if not isinstance(opened, dict):  # a bare address (a local part may hold "{")
            return {"to": text}
        return {str(k): str(v) for k, v in opened.items()}

    @functools.cached_property
    def _address_key(self) -> bytes:  # derived once per hasher, not per address
        return hmac.new(self.key, b"outbox address", hashlib.sha256).digest()

    @property
    def fingerprint(self) -> int:
        """48 bits that tell this key from another, kept in the database so that a server or
        command given another key refuses to run instead of letting every address sign again.
        Says nothing of the key or of any address."""
        mac = hmac.new(self.key, b"fingerprint", hashlib.sha256).digest()
        return int.from_bytes(mac[:6], "big")


@dataclasses.dataclass(frozen=True)
class Sealed:
    """What a signature's personal data became: the owner's box, and the partner's copy, and
    for one that waits for confirmation the name its confirmation page shows (`name_box`)."""

    owner: str
    partner: str | None = None
    name_box: str | None = None
    # The personal fields sealed for each webhook endpoint that may receive them: (endpoint id,
    # box) pairs (`domain/webhooks.seal_for`).
    webhooks: tuple[tuple[int, str], ...] = ()


def _token_key(token: str) -> bytes:
    # The link's digest (what the server keeps) is a SHA-256 of the token; this key is another
    # hash of it, so the digest does not give the key.
    return hashlib.sha256(b"petition-widget name box\x00" + token.encode()).digest()


def name_box(name: str, token: str) -> str:
    """`name` encrypted under a key made from a confirmation link's token: the confirmation
    page, opened with that link, can show the signer their name; the server alone cannot."""
    box = nacl.secret.SecretBox(_token_key(token)).encrypt(name.encode())
    return base64.b64encode(box).decode()


def open_name_box(box: str, token: str) -> str | None:
    """The name in a `name_box`, or None when `token` is not the one it was made with."""
    try:
        return nacl.secret.SecretBox(_token_key(token)).decrypt(base64.b64decode(box)).decode()
    except (nacl.exceptions.CryptoError, binascii.Error, ValueError):
        return None


def seal_signer(
    *,
    name: str,
    email: str,
    comment: str | None,
    signed_at: int,
    owner: nacl.public.PublicKey,
    partner: nacl.public.PublicKey | None,
) -> Sealed:
    """The owner's record of a signer, and (when `partner` is given: the signer ticked that
    partner's box and it has a key) the partner's copy of what a partner export shows."""
    record = {"name": name, "email": email, "comment": comment, "signed_at": signed_at}
    copy = None
    if partner is not None:
        copy = seal({"name": name, "email": email, "signed_at": signed_at}, partner)
    return Sealed(seal(record, owner), copy)
