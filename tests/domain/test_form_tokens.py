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
    payload, rest = token.lstrip(".").split(".", 1)  # "." first: a compressed payload
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


# --- Its own expiry, an exact minimum age, a renewal that remembers the wait (issues 15, 16) ---


def test_a_token_keeps_the_lifetime_it_was_issued_with() -> None:
    """Raising `TOKEN_LIFETIME` after a restart must not reopen tokens already out: their
    nonces are purged when the old lifetime ends, and a used one could then be used again."""
    clock = Clock()
    short = FormTokens(["k"], lifetime=600, min_age=0, clock=clock)
    token = short.issue("p")
    raised = FormTokens(["k"], lifetime=7200, min_age=0, clock=clock)
    clock.now += 600
    assert raised.verify(token, "p").expires_at == int(clock.now)  # to its last second
    clock.now += 1
    with pytest.raises(ExpiredToken) as caught:
        raised.verify(token, "p")
    assert caught.value.claims is not None  # genuine: the form comes back with its partner
    # And the other way: a lowered lifetime does not cut short the tokens already out.
    lowered = FormTokens(["k"], lifetime=60, min_age=0, clock=clock)
    long_lived = raised.issue("p")
    clock.now += 3600
    assert lowered.verify(long_lived, "p").expires_at == int(clock.now) - 3600 + 7200


def test_the_first_format_without_an_expiry_gets_the_current_lifetime() -> None:
    clock = Clock()
    t = tokens(clock, min_age=0)
    old = t._signer.sign(t._serializer.dump_payload(["p", "", "en", "nonce-0123456789"]))
    claims = t.verify(old.decode(), "p")
    assert claims.expires_at == claims.issued_at + 7200
    clock.now += 7201
    with pytest.raises(ExpiredToken):
        t.verify(old.decode(), "p")


def test_the_minimum_age_is_exact() -> None:
    """Issued late in a second: once counted in whole seconds, 2.1 s passed for 3."""
    clock = Clock(1_800_000_000.9)
    t = tokens(clock, min_age=3)
    token = t.issue("p")
    clock.now += 2.5
    with pytest.raises(TokenTooFresh) as caught:
        t.verify(token, "p")
    assert caught.value.retry_after == 1  # whole seconds up, so a retry then passes
    clock.now += 0.499
    with pytest.raises(TokenTooFresh):
        t.verify(token, "p")
    clock.now += 0.001
    assert t.verify(token, "p").petition == "p"


def test_a_larger_minimum_age_asked_for_is_exact_and_never_a_smaller_one() -> None:
    """The no-JavaScript form's wait while a challenge is on (`verify(min_age=...)`): counted
    like `TOKEN_MIN_AGE`, to the millisecond from `since`; a smaller one changes nothing."""
    clock = Clock(1_800_000_000.9)
    t = tokens(clock, min_age=3)
    token = t.issue("p")
    clock.now += 9.5
    with pytest.raises(TokenTooFresh) as caught:
        t.verify(token, "p", min_age=10)
    assert caught.value.retry_after == 1 and caught.value.claims is not None
    assert t.verify(token, "p").petition == "p"  # past its own minimum of 3 s
    clock.now += 0.5
    assert t.verify(token, "p", min_age=10).petition == "p"
    early = t.issue("p")
    clock.now += 1
    with pytest.raises(TokenTooFresh):
        t.verify(early, "p", min_age=0)


def test_a_renewed_form_remembers_when_its_visitor_first_got_one() -> None:
    clock = Clock()
    t = tokens(clock, min_age=3)
    first = t.issue("p", "partner-a", "ru")
    clock.now += 7300  # expired while its visitor filled it in
    with pytest.raises(ExpiredToken) as caught:
        t.verify(first, "p")
    claims = caught.value.claims
    assert claims is not None
    renewed = t.issue("p", claims.partner, claims.lang, since=claims.since)
    again = t.verify(renewed, "p")  # at once: no "too fresh" for a person who waited
    assert (again.partner, again.lang, again.since) == ("partner-a", "ru", claims.since)
    assert again.nonce != claims.nonce and again.expires_at == int(clock.now) + 7200
    # A renewal of a form sent too fast still waits for the rest of its minimum age.
    fresh = t.issue("p")
    clock.now += 1
    with pytest.raises(TokenTooFresh) as too_fast:
        t.verify(fresh, "p")
    assert too_fast.value.claims is not None
    quick = t.issue("p", since=too_fast.value.claims.since)
    with pytest.raises(TokenTooFresh) as still:
        t.verify(quick, "p")
    assert still.value.retry_after == 2
    # `since` is never later than now: a caller cannot make a token younger than it is.
    later = t.issue("p", since=clock.now + 10**6)
    clock.now += 3
    assert t.verify(later, "p").since == clock.now - 3


def test_the_thank_you_mark_is_signed_apart_from_tokens_and_short_lived() -> None:
    clock = Clock()
    t = tokens(clock)
    mark = t.mark_answered("p", "check_email")
    other = tokens(clock)  # another process, whose first key was derived for tokens
    other.issue("p")
    assert other.answered(mark, "p") == "check_email"
    assert other.answered(mark, "q") is None  # another petition's
    with pytest.raises(TokenError):  # a mark is no token
        FormTokens(["key-one"], lifetime=7200, min_age=0, clock=clock).verify(mark, "p")
    assert tokens(clock, keys=("other",)).answered(mark, "p") is None
    clock.now += 3601
    assert t.answered(mark, "p") is None
