"""Access keys in storage on both engines, and the principal a presented key becomes."""

from __future__ import annotations

import asyncio

from server.domain import access, access_keys
from server.store.storage import Storage
from server.web import auth
from tests.support import petitions

EXAMPLE = petitions.example()


async def opened(url: str) -> tuple[Storage, int]:
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    await storage.import_petitions([EXAMPLE])
    pid = await storage.petition_id(EXAMPLE.slug)
    assert pid is not None
    return storage, pid


async def stored(
    storage: Storage, role: str, label: str = "test", **scope: int | None
) -> access_keys.Key:
    key = access_keys.generate(role)
    await storage.add_access_key(key.id, role, key.digest, label, **scope)
    return key


def test_owner_and_partner_keys(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        partner = await storage.add_partner(pid, "ngo-a", "NGO A")
        owner = await stored(storage, access_keys.OWNER)
        scoped = await stored(storage, access_keys.OWNER, petition_id=pid)
        ngo = await stored(storage, access_keys.PARTNER, petition_id=pid, partner_id=partner.id)

        everyone = await auth.authenticate(storage, owner.text)
        assert everyone is not None and everyone.is_owner and everyone.petition_id is None
        assert everyone.may_manage(pid) and everyone.may_manage(pid + 1)

        one = await auth.authenticate(storage, scoped.text)
        assert one is not None and one.may_manage(pid) and not one.may_see(pid + 1)

        p = await auth.authenticate(storage, ngo.text)
        assert p is not None and not p.is_owner
        assert (p.partner_id, p.partner_code, p.petition_slug) == (
            partner.id,
            "ngo-a",
            EXAMPLE.slug,
        )
        assert p.may_see(pid) and not p.may_manage(pid)
        assert p.may_see_partner(pid, partner.id) and not p.may_see_partner(pid, partner.id + 1)
        await storage.disconnect()

    asyncio.run(check())


def test_every_wrong_key_is_the_same_refusal(database_url: str) -> None:
    async def check() -> None:
        storage, _ = await opened(database_url)
        owner = await stored(storage, access_keys.OWNER)
        wrong_secret = access_keys.Key(
            access_keys.OWNER, owner.id, access_keys.generate(access_keys.OWNER).secret
        ).text
        wrong_role = access_keys.Key(access_keys.PARTNER, owner.id, owner.secret).text
        unknown = access_keys.generate(access_keys.OWNER).text
        for presented in (None, "", "garbage", wrong_secret, wrong_role, unknown, owner.text[:-1]):
            assert await auth.authenticate(storage, presented) is None
        assert await auth.authenticate(storage, owner.text) is not None
        await storage.disconnect()

    asyncio.run(check())


def test_a_revoked_key_stops_at_once(database_url: str) -> None:
    async def check() -> None:
        storage, _ = await opened(database_url)
        owner = await stored(storage, access_keys.OWNER)
        assert await auth.by_key_id(storage, owner.id) is not None
        assert await storage.revoke_access_key(owner.id) is True
        assert await storage.revoke_access_key(owner.id) is False  # already revoked
        assert await storage.revoke_access_key("nosuchkey123") is False
        assert await auth.authenticate(storage, owner.text) is None
        assert await auth.by_key_id(storage, owner.id) is None
        row = await storage.access_key(owner.id)
        assert row is not None and row.revoked_at is not None
        await storage.disconnect()

    asyncio.run(check())


def test_keys_by_label_are_revoked_together(database_url: str) -> None:
    async def check() -> None:
        storage, _ = await opened(database_url)
        demo = [await stored(storage, access_keys.OWNER, "demo") for _ in range(2)]
        kept = await stored(storage, access_keys.OWNER, "real")
        assert await storage.revoke_access_keys_labelled("demo") == 2
        assert all([await auth.authenticate(storage, k.text) is None for k in demo])
        assert await auth.authenticate(storage, kept.text) is not None
        listed = await storage.access_keys()
        assert [r.id for r in listed if r.revoked_at is None] == [kept.id]
        assert all(k.secret not in repr(listed) for k in [*demo, kept])
        await storage.disconnect()

    asyncio.run(check())


def test_bearer_header() -> None:
    assert access.bearer("Bearer pwo_x") == "pwo_x"
    assert access.bearer("bearer   pwo_x ") == "pwo_x"
    assert access.bearer("Basic abc") is None
    assert access.bearer("Bearer ") is None
    assert access.bearer(None) is None
