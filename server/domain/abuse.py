"""Abuse rules: what a signature's state is, the networks the aggregate limit counts by, and
the owner's bulk selections. Pure values and rules.

A signature is stored in one of three states (`signatures.status`, and on a submission that
waits for confirmation the state it gets once confirmed):

- `COUNTED`: on the counters, the charts, the exports, the badge and every total;
- `QUARANTINED`: it tripped an abuse rule. Its signer got the same answer and the same mail as
  anyone (a bot learns nothing), its confirmation is recorded, but it counts nowhere until an
  owner restores it;
- `INVALIDATED`: an owner took it off the count. It stays stored, so it can be restored.

The first abuse rule is the aggregate limit: signatures per minute per IPv4 /24 and per IPv6
/48 on one petition (`RATE_NET_PER_MINUTE`), beside the per-address limit. Our signers sit
behind carrier NAT and VPN exits, so a submission over it is quarantined, never refused (see
`decision.decide` and docs/privacy.md for the figures).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Callable

from server.domain.partners import INVALID_CODE, normalise_code
from server.domain.sealing import EmailHasher
from server.domain.validation import stored_email_key

COUNTED = "counted"
QUARANTINED = "quarantined"
INVALIDATED = "invalidated"
STATES = (COUNTED, QUARANTINED, INVALIDATED)

#: The aggregate limit's networks: an IPv4 /24 (a carrier's NAT pool or a VPN exit's block is
#: at least that), an IPv6 /48 (one site, as registries hand them out).
IPV4_PREFIX, IPV6_PREFIX = 24, 48
#: The aggregate limit's burst, in minutes of its rate: a classroom or a lecture hall behind one
#: NAT that signs within a few minutes is counted in full (docs/privacy.md).
NETWORK_BURST_MINUTES = 5

#: Asked once a submission is otherwise accepted: is its network over the aggregate limit? It
#: counts the submission as it answers, so only accepted submissions spend a network's budget.
#: The proof-of-work challenge (issue 15) is the other answer to the same question.
OverNetworkLimit = Callable[[], bool]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def network_of(address: Address) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The network an address is counted in by the aggregate limit."""
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


# --- Bulk invalidation and restoration ---------------------------------------------------------

INVALIDATE = "invalidate"
RESTORE = "restore"


def moves(action: str, quarantined_only: bool) -> tuple[tuple[str, ...], str]:
    """The states an action takes signatures from, and the state it puts them in. With
    `quarantined_only`, only quarantined ones are taken."""
    if action == INVALIDATE:
        return ((QUARANTINED,) if quarantined_only else (COUNTED, QUARANTINED)), INVALIDATED
    if action == RESTORE:
        return ((QUARANTINED,) if quarantined_only else (QUARANTINED, INVALIDATED)), COUNTED
    raise ValueError(action)


class BadSelection(ValueError):
    """A selection field that cannot be used; `key` is a dashboard text's key (the CLI prints
    its English text), `field` the form field or flag it is about."""

    def __init__(self, field: str, key: str) -> None:
        super().__init__(f"{field}: {key}")
        self.field = field
        self.key = key


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which signatures of a petition a bulk action takes: every given filter must hold.
    Times are UNIX seconds, `since <= created_at < until`; `domain_key` is the keyed hash of
    an email domain (`EmailHasher.domain_key`), never the domain."""

    partner_code: str | None = None
    since: int | None = None
    until: int | None = None
    domain_key: str | None = None
    quarantined_only: bool = False

    @property
    def empty(self) -> bool:
        """Nothing chosen: a bulk action over a whole petition is refused, never a default."""
        return not (
            self.partner_code
            or self.since is not None
            or self.until is not None
            or self.domain_key
            or self.quarantined_only
        )


def parse_moment(text: str, field: str, *, end: bool = False) -> int:
    """An ISO 8601 date or date and time as UNIX seconds; UTC unless it says otherwise. A date
    alone is its first second, or with `end` the first second after it (so `--until
    2026-12-01` takes in the whole of that day)."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = datetime.date.fromisoformat(text)
            if end:
                day += datetime.timedelta(days=1)
            moment = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
        else:
            moment = datetime.datetime.fromisoformat(text.replace("z", "Z"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.UTC)
    except ValueError:
        raise BadSelection(field, "bulk_bad_time") from None
    return int(moment.timestamp())


def domain_of(typed: str) -> str | None:
    """The domain an owner typed, as addresses at it are keyed (lower case, IDNA 2008), or
    None when no address can have it."""
    typed = typed.strip().lower().lstrip("@")[:255]
    if not typed:
        return None
    key = stored_email_key("someone@" + typed)
    return key.rpartition("@")[2] if key else None


def check_window(since: int | None, until: int | None) -> None:
    if since is not None and until is not None and since >= until:
        raise BadSelection("until", "bulk_window_backwards")


def select(
    *,
    partner: str = "",
    since: str = "",
    until: str = "",
    domain: str = "",
    quarantined: bool = False,
    hasher: EmailHasher | None,
) -> Selection:
    """A selection from what an owner typed (the CLI's flags, the dashboard's form); raises
    `BadSelection` for the first field that cannot be used. The domain is matched through its
    keyed hash, so `hasher` (`EMAIL_HASH_KEY`) is needed for it."""
    code = normalise_code(partner) if partner.strip() else ""
    if code == INVALID_CODE:
        raise BadSelection("partner", "bulk_bad_partner")
    start = parse_moment(since, "from") if since.strip() else None
    end = parse_moment(until, "until", end=True) if until.strip() else None
    check_window(start, end)
    domain_key = None
    if domain.strip():
        typed = domain_of(domain)
        if typed is None:
            raise BadSelection("domain", "domains_not_a_domain")
        if hasher is None:
            raise BadSelection("domain", "bulk_no_hash_key")
        domain_key = hasher.domain_key(typed)
    chosen = Selection(code or None, start, end, domain_key, quarantined)
    if chosen.empty:
        raise BadSelection("selection", "bulk_nothing_chosen")
    return chosen
