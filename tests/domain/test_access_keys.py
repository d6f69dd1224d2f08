"""Access keys: their shape, their digests, and what a presented key must match (pure)."""

from __future__ import annotations

import re

import pytest

from server.domain import access_keys


def test_generated_keys_have_the_documented_shape() -> None:
    owner, partner = (
        access_keys.generate(access_keys.OWNER),
        access_keys.generate(access_keys.PARTNER),
    )
    assert re.fullmatch(r"pwo_[a-z0-9]{12}_[A-Za-z0-9]{32}", owner.text)
    assert re.fullmatch(r"pwp_[a-z0-9]{12}_[A-Za-z0-9]{32}", partner.text)
    assert owner.id != partner.id and owner.secret != partner.secret


def test_generated_keys_are_distinct() -> None:
    made = [access_keys.generate(access_keys.OWNER) for _ in range(500)]
    assert len({k.id for k in made}) == len({k.secret for k in made}) == 500


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError):
        access_keys.generate("admin")


def test_parse_round_trips_and_forgives_surrounding_space() -> None:
    key = access_keys.generate(access_keys.PARTNER)
    assert access_keys.parse(key.text) == key
    assert access_keys.parse(f"  {key.text}\n") == key


@pytest.mark.parametrize(
    "text",
    [
        None,
        42,
        "",
        "pwo_",
        "pwx_abcdefghijkl_" + "A" * 32,  # unknown prefix
        "pwo_ABCDEFGHIJKL_" + "A" * 32,  # id must be lower case
        "pwo_abcdefghijk_" + "A" * 32,  # id too short
        "pwo_abcdefghijkl_" + "A" * 31,  # secret too short
        "pwo_abcdefghijkl_" + "A" * 33,  # secret too long
        "pwo_abcdefghijkl_" + "A" * 31 + "-",  # not in the alphabet
        "pwo_abcdefghijkl_" + "A" * 32 + "x" * 200,  # absurdly long
    ],
)
def test_parse_refuses_anything_else(text: object) -> None:
    assert access_keys.parse(text) is None


def test_digest_hides_the_secret_and_depends_on_id_and_secret() -> None:
    key = access_keys.generate(access_keys.OWNER)
    assert key.secret not in key.digest and len(key.digest) == 64
    assert access_keys.digest(key.id, key.secret) == key.digest
    assert access_keys.digest("x" * 12, key.secret) != key.digest


def test_matches_only_the_right_secret() -> None:
    key = access_keys.generate(access_keys.OWNER)
    other = access_keys.generate(access_keys.OWNER)
    assert access_keys.matches(key, key.digest)
    assert not access_keys.matches(key, other.digest)
    assert not access_keys.matches(
        access_keys.Key(access_keys.OWNER, key.id, other.secret), key.digest
    )
    assert not access_keys.matches(key, access_keys.UNKNOWN_DIGEST)


def test_the_secret_never_shows_in_a_repr() -> None:
    key = access_keys.generate(access_keys.PARTNER)
    assert key.secret not in repr(key)


def test_key_id_accepts_a_whole_key_or_an_id() -> None:
    key = access_keys.generate(access_keys.OWNER)
    assert access_keys.key_id(key.text) == key.id
    assert access_keys.key_id(f" {key.id} ") == key.id
    assert access_keys.key_id("not a key") is None
