"""Webhooks, decided: who receives which event with which fields, how a delivery is signed
(Standard Webhooks), what an OSDI record looks like, which URLs and addresses are allowed, and
when a milestone is reached. Pure: the store writes and delivers what this module composes.

Who gets personal data (the issue's contract, docs/webhooks.md):

- an owner endpoint (no partner) gets every counted and withdrawn event, with the personal
  fields (name, email) only for a signer who ticked the organiser's box: the others agreed to
  be counted, not to be entered in a CRM;
- a partner endpoint gets counted and withdrawn events only for its own signers who ticked its
  box (with their personal fields), and milestones, which carry counts only;
- with sealing on, the personal fields travel only inside `data.sealed`, a sealed box for the
  endpoint's own public key made at submission; an endpoint without a key gets the event
  without them. An OSDI endpoint needs an address, so it gets only counted signatures whose
  address it may see in clear (sealing on refuses OSDI endpoints when they are added), and
  no other event: not even `webhook.test`, which a CRM would take for a person (`refuses_test`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import hmac
import ipaddress
import json
import math
import secrets
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from server.domain.errors import PetitionWidgetError
from server.domain.sealing import parse_public_key, seal

COUNTED = "signature.counted"
WITHDRAWN = "signature.withdrawn"
MILESTONE = "petition.milestone"
CLOSED = "petition.closed"
TEST = "webhook.test"
EVENT_TYPES = (COUNTED, WITHDRAWN, MILESTONE, CLOSED, TEST)
#: Why a signature stopped counting.
REASONS = ("withdrawn", "invalidated", "retention")

STANDARD, OSDI = "standard", "osdi"
FORMATS = (STANDARD, OSDI)
#: Percentages of the goal that are milestones (auto-goal steps come on top: `Milestones`).
MILESTONES = (25, 50, 75, 100)
SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of every secret, not one)
SECRET_BYTES = 32
MAX_URL = 2000  # characters
#: The fields that name a person: only these are withheld, or sealed, per the rules above.
PERSONAL = ("name", "email")


class BadEndpoint(PetitionWidgetError):
    """An endpoint that cannot be added as given: the message says which rule, for the CLI."""


@dataclasses.dataclass(frozen=True)
class Target:
    """An endpoint as events are addressed to it."""

    id: int
    partner_id: int | None  # None: the owner's
    format: str = STANDARD
    public_key: str | None = None


@dataclasses.dataclass(frozen=True)
class SignatureFacts:
    """What events about one signature may say, read inside the transaction that causes them.
    `name` and `email` are None when the data is sealed (the store holds them only in boxes:
    `boxes`, endpoint id → a box made for that endpoint's key at submission)."""

    signature_id: str
    petition: str  # the slug
    partner_id: int | None
    partner_code: str | None
    signed_at: int
    confirmed_at: int | None
    country: str | None
    lang: str
    consent_organiser: bool
    consent_partner: bool
    consent_version: str
    consent_text: str
    # The box "Show my name on the list delivered to {target}" (`[form] name_to_target`).
    consent_name_to_target: bool = False
    name: str | None = None
    email: str | None = None
    boxes: Mapping[int, str] = dataclasses.field(default_factory=dict)


def receives(target: Target, partner_id: int | None, consent_partner: bool) -> bool:
    """Whether `target` hears of a signature at all (counted or withdrawn)."""
    if target.partner_id is None:
        return True
    return target.partner_id == partner_id and consent_partner


def may_name(target: Target, partner_id: int | None, consent_organiser: bool,
             consent_partner: bool) -> bool:  # fmt: skip
    """Whether `target` may receive the signer's personal fields."""
    if not receives(target, partner_id, consent_partner):
        return False
    return consent_organiser if target.partner_id is None else True


def seal_for(
    targets: Iterable[Target], *, partner_id: int | None, consent_organiser: bool,
    consent_partner: bool, name: str, email: str,
) -> dict[int, str]:  # fmt: skip
    """At submission, with sealing on: the signer's personal fields sealed for each endpoint
    that may receive them and has a key (endpoint id → base64 sealed box of their JSON)."""
    boxes = {}
    for t in targets:
        if t.public_key and may_name(t, partner_id, consent_organiser, consent_partner):
            boxes[t.id] = seal({"name": name, "email": email}, parse_public_key(t.public_key))
    return boxes


def counted_data(target: Target, f: SignatureFacts) -> dict[str, Any] | None:
    """The `data` of `signature.counted` for `target`, or None when it gets no such event."""
    if not receives(target, f.partner_id, f.consent_partner):
        return None
    named = may_name(target, f.partner_id, f.consent_organiser, f.consent_partner)
    if target.format == OSDI and not (named and f.email is not None):
        return None  # an OSDI person without an address is no record at all
    data: dict[str, Any] = {
        "signature_id": f.signature_id,
        "petition": f.petition,
        "partner_code": f.partner_code,
        "signed_at": iso(f.signed_at),
        "confirmed_at": iso(f.confirmed_at) if f.confirmed_at is not None else None,
        "country": f.country,
        "lang": f.lang,
        "consent_organiser": f.consent_organiser,
        "consent_partner": f.consent_partner,
        "consent_name_to_target": f.consent_name_to_target,
        "consent_version": f.consent_version,
        "consent_text": f.consent_text,
    }
    if named:
        if f.email is not None:  # in clear: sealing is off
            data["name"], data["email"] = f.name, f.email
        elif target.id in f.boxes:
            data["sealed"] = f.boxes[target.id]
    return data


def withdrawn_data(
    target: Target, *, signature_id: str, petition: str,
    partner_id: int | None, partner_code: str | None, consent_partner: bool, reason: str,
) -> dict[str, Any] | None:  # fmt: skip
    """The `data` of `signature.withdrawn` for `target`, or None: it goes to whoever heard of
    the signature counting (an OSDI endpoint gets only counted signatures)."""
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    if target.format == OSDI or not receives(target, partner_id, consent_partner):
        return None
    return {
        "signature_id": signature_id,
        "petition": petition,
        "partner_code": partner_code,
        "reason": reason,
    }


def plain_data(target: Target, type_: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
    """Events without signer data (milestone, closed, test): every standard endpoint. An OSDI
    endpoint gets none: it hears of nothing but `signature.counted` (the contract), and each
    delivery to it is taken as a person's record."""
    if target.format == OSDI:
        return None
    return dict(data)


def refuses_test(target: Target) -> str | None:
    """Why `target` cannot be sent a `webhook.test` event (the CLI says it), or None."""
    if target.format != OSDI:
        return None
    return (
        f"endpoint {target.id} is an OSDI endpoint: it receives only signature.counted, each "
        "taken by the CRM as a person's record, so no webhook.test is sent (it would enter a "
        "made-up person). To try it, sign the petition with an address of your own, ticking "
        "the box this endpoint hears of, and watch `webhooks list` (or the dashboard) for the "
        "delivery; then delete that person in the CRM"
    )


def without_personal(data: Mapping[str, Any]) -> dict[str, Any]:
    """An event's data with the clear personal fields gone (a failed event kept for a week)."""
    return {k: v for k, v in data.items() if k not in PERSONAL}


def has_clear_personal(data: Mapping[str, Any]) -> bool:
    return any(data.get(k) for k in PERSONAL)


# Milestones --------------------------------------------------------------------------------


def threshold(goal: int, percent: int) -> int:
    """The count at which `percent` of `goal` is reached (rounded up: 25 % of 10 is 3)."""
    return max(1, math.ceil(goal * percent / 100))


def reached(total: int, goal: int, percents: Sequence[int] = MILESTONES) -> list[int]:
    """The milestones (percentages) of `goal` that `total` has reached, in order."""
    if goal <= 0:
        return []
    return [p for p in percents if total >= threshold(goal, p)]


# Delivery ----------------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_event_id() -> str:
    """The `webhook-id`: random, the same for every attempt at one event for one endpoint."""
    return "msg_" + secrets.token_urlsafe(18)


def _secret_bytes(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise BadEndpoint("a webhook secret must be whsec_ and base64") from None


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: `v1,` + base64 HMAC-SHA256 over `id.timestamp.body`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Every valid secret's signature, space-separated (while a rotation's old one lasts)."""
    return " ".join(signature(s, msg_id, timestamp, body) for s in secrets_)


def iso(timestamp: float) -> str:
    return (
        datetime.datetime.fromtimestamp(int(timestamp), datetime.UTC)
        .isoformat()
        .replace("+00:00", "Z")
    )


def body(type_: str, timestamp: float, data: Mapping[str, Any], sequence: int) -> bytes:
    """A standard endpoint's body: `type`, `timestamp` (the event's time), `data`, and the
    per-endpoint `sequence` (also in the `webhook-sequence` header)."""
    envelope = {"type": type_, "timestamp": iso(timestamp), "sequence": sequence, "data": data}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def split_name(name: str) -> tuple[str, str]:
    """OSDI's given and family names from our one name field: the last word is the family
    name and everything before it the given name; a one-word name is a given name alone.
    (No rule is right for every culture; a CRM that needs better asks the signer.)"""
    words = name.split()
    if len(words) <= 1:
        return (words[0] if words else ""), ""
    return " ".join(words[:-1]), words[-1]


def osdi_record(data: Mapping[str, Any]) -> dict[str, Any]:
    """The bare body of OSDI's record signature helper for a `signature.counted` event."""
    given, family = split_name(str(data.get("name") or ""))
    person: dict[str, Any] = {
        "given_name": given,
        "family_name": family,
        "email_addresses": [{"address": data["email"], "primary": True}],
    }
    if data.get("country"):
        person["postal_addresses"] = [{"country": data["country"]}]
    record: dict[str, Any] = {"person": person, "action_date": data.get("signed_at")}
    if data.get("partner_code"):
        record["referrer_data"] = {"source": data["partner_code"]}
    return record


def osdi_body(data: Mapping[str, Any]) -> bytes:
    return json.dumps(osdi_record(data), ensure_ascii=False, separators=(",", ":")).encode()


# URLs and addresses ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Url:
    scheme: str
    host: str  # as typed, lower-cased; IPv6 without brackets
    port: int
    target: str  # path and query, as the request line says it
    text: str


def check_url(text: str, *, allow_http: bool) -> Url:
    """An endpoint URL, or `BadEndpoint` saying which rule it breaks."""
    if len(text) > MAX_URL:
        raise BadEndpoint(f"the URL is longer than {MAX_URL} characters")
    if any(ord(c) <= 32 or ord(c) == 127 for c in text):
        raise BadEndpoint("the URL holds spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise BadEndpoint("the URL cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise BadEndpoint("the URL must start with https:// (or http:// with --allow-http)")
    if scheme == "http" and not allow_http:
        raise BadEndpoint("http: URLs are refused: use https://, or add --allow-http")
    if parts.username is not None or parts.password is not None:
        raise BadEndpoint("the URL may not hold a user or password: the secret signs instead")
    if parts.fragment:
        raise BadEndpoint("the URL may not have a #fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise BadEndpoint("the URL has no host")
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        raise BadEndpoint("write the host in its ASCII (xn--) form") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    default = 443 if scheme == "https" else 80
    return Url(scheme, host, port or default, target, text)


def address_problem(address: str, *, allow_private: bool) -> str | None:
    """Why a delivery may not connect to `address` (a resolved IP), or None when it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return f"{ip} is a multicast or unspecified address: never a receiver"
    if allow_private or ip.is_global:
        return None
    kind = "loopback" if ip.is_loopback else "link-local" if ip.is_link_local else "private"
    return (
        f"the host resolves to {ip}, a {kind} address; loopback, private and link-local "
        "addresses are refused unless the endpoint was added with --allow-private"
    )
