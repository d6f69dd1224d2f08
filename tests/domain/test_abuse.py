"""The abuse rules' pure parts: networks, the states an action moves, the owner's selections
(ISO 8601 times, typed domains through their keyed hash, field-level errors), and the trending
rule."""

from __future__ import annotations

import ipaddress

import pytest

from server.domain import abuse, trending
from server.domain.sealing import EmailHasher

HASHER = EmailHasher(b"k" * 32)


@pytest.mark.parametrize(
    "address,network",
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
    ],
)
def test_networks_are_ipv4_slash_24_and_ipv6_slash_48(address: str, network: str) -> None:
    assert str(abuse.network_of(ipaddress.ip_address(address))) == network


def test_actions_take_and_give_states() -> None:
    assert abuse.moves(abuse.INVALIDATE, False) == (("counted", "quarantined"), "invalidated")
    assert abuse.moves(abuse.INVALIDATE, True) == (("quarantined",), "invalidated")
    assert abuse.moves(abuse.RESTORE, False) == (("quarantined", "invalidated"), "counted")
    assert abuse.moves(abuse.RESTORE, True) == (("quarantined",), "counted")


@pytest.mark.parametrize(
    "text,end,expected",
    [
        ("2026-12-01", False, 1_796_083_200),
        ("2026-12-01", True, 1_796_083_200 + 86_400),  # a date as "until": the whole day
        ("2026-12-01T14:00", False, 1_796_083_200 + 14 * 3600),
        ("2026-12-01T14:00Z", False, 1_796_083_200 + 14 * 3600),
        ("2026-12-01T14:00+02:00", False, 1_796_083_200 + 12 * 3600),
    ],
)
def test_times_are_iso_8601_and_utc_unless_they_say(text: str, end: bool, expected: int) -> None:
    assert abuse.parse_moment(text, "from", end=end) == expected


@pytest.mark.parametrize(
    "fields,field,key",
    [
        ({}, "selection", "bulk_nothing_chosen"),
        ({"since": "yesterday"}, "from", "bulk_bad_time"),
        ({"until": "2026-13-01"}, "until", "bulk_bad_time"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "until", "bulk_window_backwards"),
        ({"partner": "Not A Code!"}, "partner", "bulk_bad_partner"),
        ({"domain": "not a domain"}, "domain", "domains_not_a_domain"),
    ],
)
def test_each_bad_selection_names_its_field(fields: dict[str, str], field: str, key: str) -> None:
    with pytest.raises(abuse.BadSelection) as caught:
        abuse.select(
            partner=fields.get("partner", ""), since=fields.get("since", ""),
            until=fields.get("until", ""), domain=fields.get("domain", ""), hasher=HASHER,
        )  # fmt: skip
    assert (caught.value.field, caught.value.key) == (field, key)


def test_a_typed_domain_is_matched_through_its_keyed_hash_in_any_form() -> None:
    keys = {
        abuse.select(domain=typed, hasher=HASHER).domain_key
        for typed in ("Большой.рф", "@БОЛЬШОЙ.РФ", "xn--90aqflb3d1a.xn--p1ai ")
    }
    assert keys == {HASHER.domain_key("xn--90aqflb3d1a.xn--p1ai")}
    with pytest.raises(abuse.BadSelection):
        abuse.select(domain="example.org", hasher=None)


@pytest.mark.parametrize(
    "last,previous,spike",
    [
        (30, [2, 2, 2, 2, 2, 2, 2], True),
        (19, [0] * 7, False),  # under the minimum: never a spike
        (60, [20, 20, 20, 20, 20, 20, 20], False),  # not over three times the usual
        (61, [20, 20, 20, 500, 20, 20, 20], True),  # one earlier spike does not raise the bar
        (500, [], False),  # no history: no usual rate, no flag
    ],
)
def test_the_trending_rule(last: int, previous: list[int], spike: bool) -> None:
    assert trending.is_spike(last, trending.usual(previous)) is spike
