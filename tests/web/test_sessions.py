"""Dashboard sessions: a random id in a signed cookie, good only while the database holds its
digest: expiry under a frozen clock, key rotation, the CSRF token derived from the id, and
sign-out, on both engines (revocation and the purge: tests/store/test_sessions.py)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

from itsdangerous import URLSafeTimedSerializer

from server.domain import access_keys
from server.store.storage import Storage
from server.web.sessions import MAX_AGE, SALT, Session, Sessions, cookie_name, csrf_of, digest

NOW = 1_800_000_000.0


def at(moment: float, keys: list[str] | None = None) -> Sessions:
    return Sessions(keys or ["k1"], clock=lambda: moment)


def with_storage(url: str, body: Callable[[Storage, access_keys.Key], Awaitable[None]]) -> None:
    """`body` with a migrated database and an owner key in it."""

    async def run() -> None:
        storage = Storage(url)
        await storage.connect()
        try:
            await storage.migrate()
            key = access_keys.generate(access_keys.OWNER)
            await storage.add_access_key(key.id, key.role, key.digest, "test")
            await body(storage, key)
        finally:
            await storage.disconnect()

    asyncio.run(run())


async def rows(storage: Storage) -> list[tuple[str, str]]:
    found = await storage.database.fetch_all("SELECT digest, key_id FROM dashboard_sessions")
    return [(r[0], r[1]) for r in found]


# --- The cookie alone (no database) -------------------------------------------------------------


def test_a_cookie_carries_a_random_id_and_nothing_else() -> None:
    ids = set()
    for _ in range(3):
        session_id, cookie = at(NOW).new()
        assert at(NOW + 60).session_id(cookie) == session_id
        assert len(session_id) == 43  # 32 bytes from `secrets`, URL-safe base64
        ids.add(session_id)
    assert len(ids) == 3


def test_cookies_expire() -> None:
    _, cookie = at(NOW).new()
    assert at(NOW + MAX_AGE).session_id(cookie) is not None
    assert at(NOW + MAX_AGE + 1).session_id(cookie) is None


def test_forged_tampered_and_old_cookies_carry_no_id() -> None:
    _, cookie = at(NOW).new()
    # Not the last character: its low bits are base64 padding, so changing it may change
    # nothing (B and A decode alike there).
    tampered = cookie[:-5] + ("A" if cookie[-5] != "A" else "B") + cookie[-4:]
    signer = URLSafeTimedSerializer(
        ["k1"], salt=SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )
    old_format = signer.dumps(["abcdefghijkl", "x" * 24])  # what sessions were before
    for bad in (None, "", "x", tampered, cookie * 4, at(NOW, ["other"]).new()[1], old_format):
        assert at(NOW).session_id(bad) is None


def test_form_tokens_are_not_sessions() -> None:
    from server.domain.form_tokens import FormTokens

    token = FormTokens(["k1"], lifetime=7200, min_age=0, clock=lambda: NOW).issue("slug")
    assert at(NOW).session_id(token) is None  # another salt: one purpose per signature


def test_keys_rotate() -> None:
    _, old = at(NOW, ["old"]).new()
    assert at(NOW, ["new", "old"]).session_id(old) is not None  # still valid after rotation
    assert at(NOW, ["new"]).session_id(old) is None  # until the old key is dropped
    _, new = at(NOW, ["new", "old"]).new()
    assert at(NOW, ["new"]).session_id(new) is not None  # the first key signs


def test_the_csrf_token_is_the_sessions_own_and_gives_no_id_away() -> None:
    one, two = (Session(at(NOW).new()[0], "abcdefghijkl") for _ in range(2))
    assert one.csrf == csrf_of(one.id) and len(one.csrf) >= 40
    assert one.csrf_ok(one.csrf) and not one.csrf_ok(two.csrf)
    assert not one.csrf_ok("") and not one.csrf_ok(None) and not one.csrf_ok("x")
    assert one.id not in repr(one) and one.csrf not in repr(one)
    # Neither the token nor the stored digest is the id, or one another.
    assert len({one.id, one.csrf, digest(one.id)}) == 3


def test_cookie_name_over_https() -> None:
    assert cookie_name(False) == "pw_admin" and cookie_name(True) == "__Host-pw_admin"


# --- Sessions in the database, on both engines --------------------------------------------------


def test_a_session_is_what_the_database_holds_and_only_its_digest(database_url: str) -> None:
    async def body(storage: Storage, key: access_keys.Key) -> None:
        sessions = at(NOW)
        cookie = await sessions.start(storage, key.id)
        found = await sessions.resume(storage, cookie)
        assert found is not None and found.key_id == key.id
        assert await rows(storage) == [(digest(found.id), key.id)]
        row = await storage.database.fetch_one(
            "SELECT created_at, expires_at FROM dashboard_sessions"
        )
        assert row is not None
        assert (row[0], row[1]) == (int(NOW), int(NOW) + MAX_AGE)
        # A cookie signed with the same keys, of the same form, but whose id was never stored.
        forged = at(NOW).new()[1]
        assert (
            at(NOW).session_id(forged) is not None
            and await sessions.resume(storage, forged) is None
        )

    with_storage(database_url, body)


def test_a_session_ends_with_its_time_even_before_the_purge(database_url: str) -> None:
    async def body(storage: Storage, key: access_keys.Key) -> None:
        cookie = await at(NOW).start(storage, key.id)

        def lenient(moment: float) -> Sessions:
            # Its cookie check would allow twice as long: the row's end must refuse on its own.
            return Sessions(["k1"], max_age=MAX_AGE * 2, clock=lambda: moment)

        assert await lenient(NOW + MAX_AGE).resume(storage, cookie) is not None
        assert await lenient(NOW + MAX_AGE + 1).resume(storage, cookie) is None
        assert len(await rows(storage)) == 1  # not purged yet, and refused all the same

    with_storage(database_url, body)


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(database_url: str) -> None:
    async def body(storage: Storage, key: access_keys.Key) -> None:
        sessions = at(NOW)
        cookie, other = await sessions.start(storage, key.id), await sessions.start(storage, key.id)
        session = await sessions.resume(storage, cookie)
        assert session is not None
        await sessions.end(storage, session)
        assert await sessions.resume(storage, cookie) is None
        assert await sessions.resume(storage, other) is not None  # another browser's stays

    with_storage(database_url, body)
