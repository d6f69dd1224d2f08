"""Dashboard sessions: signed, expiring, rotating keys, and their CSRF token (pure, frozen
clock)."""

from __future__ import annotations

from server.web.sessions import MAX_AGE, Sessions, cookie_name

NOW = 1_800_000_000.0


def at(moment: float, keys: list[str] | None = None) -> Sessions:
    return Sessions(keys or ["k1"], clock=lambda: moment)


def test_a_session_names_its_key_and_carries_a_csrf_token() -> None:
    cookie = at(NOW).issue("abcdefghijkl")
    session = at(NOW + 60).read(cookie)
    assert session is not None
    assert session.key_id == "abcdefghijkl" and session.issued_at == int(NOW)
    assert len(session.csrf) >= 20 and session.csrf not in repr(session)
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok("") and not session.csrf_ok(None) and not session.csrf_ok("x")


def test_every_session_gets_its_own_csrf_token() -> None:
    one, two = (at(NOW).read(at(NOW).issue("abcdefghijkl")) for _ in range(2))
    assert one is not None and two is not None and one.csrf != two.csrf
    assert not one.csrf_ok(two.csrf)


def test_sessions_expire() -> None:
    cookie = at(NOW).issue("abcdefghijkl")
    assert at(NOW + MAX_AGE).read(cookie) is not None
    assert at(NOW + MAX_AGE + 1).read(cookie) is None


def test_forged_and_tampered_cookies_read_as_none() -> None:
    cookie = at(NOW).issue("abcdefghijkl")
    # Not the last character: its low bits are base64 padding, so changing it may change
    # nothing (B and A decode alike there).
    tampered = cookie[:-5] + ("A" if cookie[-5] != "A" else "B") + cookie[-4:]
    for bad in (None, "", "x", tampered, cookie * 4,
                at(NOW, ["other"]).issue("abcdefghijkl")):  # fmt: skip
        assert at(NOW).read(bad) is None


def test_form_tokens_are_not_sessions() -> None:
    from server.domain.form_tokens import FormTokens

    token = FormTokens(["k1"], lifetime=7200, min_age=0, clock=lambda: NOW).issue("slug")
    assert at(NOW).read(token) is None  # another salt: one purpose per signature


def test_keys_rotate() -> None:
    old = at(NOW, ["old"]).issue("abcdefghijkl")
    assert at(NOW, ["new", "old"]).read(old) is not None  # still valid after rotation
    assert at(NOW, ["new"]).read(old) is None  # until the old key is dropped
    new = at(NOW, ["new", "old"]).issue("abcdefghijkl")
    assert at(NOW, ["new"]).read(new) is not None  # the first key signs


def test_cookie_name_over_https() -> None:
    assert cookie_name(False) == "pw_admin" and cookie_name(True) == "__Host-pw_admin"
