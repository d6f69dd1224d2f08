from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.form_tokens import (
    MAX_TOKEN_LENGTH,
    ExpiredToken,
    FormTokens,
    TokenError,
    TokenTooFresh,
    WrongPetition,
)


class Clock:
    """A frozen clock the test moves by hand: expiry is tested without sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tokens(clock: Clock, keys: tuple[str, ...] = ("key-one",), min_age: int = 3) -> FormTokens:
    return FormTokens(keys, lifetime=7200, min_age=min_age, clock=clock)


def test_round_trip_carries_claims() -> None:
    clock = Clock()
    t = tokens(clock)
    token = t.issue("petition", "partner-a", "ru")
    clock.now += 10
    claims = t.verify(token, "petition")
    assert (claims.petition, claims.partner, claims.lang) == ("petition", "partner-a", "ru")
    assert claims.issued_at == int(clock.now) - 10
    assert len(claims.nonce) >= 16


def test_nonces_differ() -> None:
    clock = Clock()
    t = tokens(clock, min_age=0)
    first, second = t.issue("p"), t.issue("p")
    assert t.verify(first, "p").nonce != t.verify(second, "p").nonce


def test_too_fresh_says_how_long_to_wait() -> None:
    clock = Clock()
    t = tokens(clock, min_age=3)
    token = t.issue("p")
    clock.now += 1
    with pytest.raises(TokenTooFresh) as caught:
        t.verify(token, "p")
    assert caught.value.code == "token_too_fresh"
    assert caught.value.retry_after == 2


def test_expired() -> None:
    clock = Clock()
    t = tokens(clock)
    token = t.issue("p")
    clock.now += 7201
    with pytest.raises(ExpiredToken):
        t.verify(token, "p")


def test_wrong_petition() -> None:
    clock = Clock()
    t = tokens(clock, min_age=0)
    with pytest.raises(WrongPetition):
        t.verify(t.issue("other"), "p")


def test_tampered_payload_is_invalid() -> None:
    clock = Clock()
    t = tokens(clock, min_age=0)
    token = t.issue("p", "partner-a")
    payload, rest = token.split(".", 1)
    forged = ("X" if payload[0] != "X" else "Y") + payload[1:] + "." + rest
    with pytest.raises(TokenError) as caught:
        t.verify(forged, "p")
    assert caught.value.code == "invalid_token"


def test_forged_with_another_key_is_invalid() -> None:
    clock = Clock()
    ours = tokens(clock, min_age=0)
    theirs = tokens(clock, keys=("attacker-key",), min_age=0)
    with pytest.raises(TokenError) as caught:
        ours.verify(theirs.issue("p"), "p")
    assert caught.value.code == "invalid_token"


def test_rotation_old_key_still_verifies_new_key_signs() -> None:
    clock = Clock()
    before = tokens(clock, keys=("old",), min_age=0)
    after = tokens(clock, keys=("new", "old"), min_age=0)
    assert after.verify(before.issue("p"), "p").petition == "p"
    new_token = after.issue("p")
    with pytest.raises(TokenError):
        before.verify(new_token, "p")  # signed with the first key, which `before` lacks


@pytest.mark.parametrize("token", [None, 5, "", "x" * (MAX_TOKEN_LENGTH + 1), "a.b.c", ["t"]])
def test_garbage_is_invalid(token: object) -> None:
    with pytest.raises(TokenError) as caught:
        tokens(Clock()).verify(token, "p")
    assert caught.value.code == "invalid_token"


def test_peek_reads_expired_but_not_forged() -> None:
    clock = Clock()
    t = tokens(clock)
    token = t.issue("p", "partner-a", "ru")
    clock.now += 10_000
    claims = t.peek(token)
    assert claims is not None and claims.partner == "partner-a"
    assert tokens(clock, keys=("other",)).peek(token) is None


@given(st.text(max_size=200))
def test_any_text_as_a_token_is_refused_cleanly(text: str) -> None:
    """Never an error of another kind (a lone surrogate once made itsdangerous raise)."""
    minter = FormTokens(["k"], lifetime=3600, min_age=0)
    with pytest.raises(TokenError):
        minter.verify(text, "save-x")
    assert minter.peek(text) is None
    with pytest.raises(TokenError):
        minter.verify("\ud800" + minter.issue("save-x"), "save-x")
