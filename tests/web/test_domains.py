"""The owner's look-up of signatures by email domain, on both engines: found by the domain's
keyed hash as typed (any case, with or without `@`, an IDN in either form), no count under the
minimum, a clear message for what is not a domain, and owners only."""

from __future__ import annotations

import asyncio

import httpx

from server.domain import access_keys, i18n
from server.store.storage import Storage
from server.web.admin import DOMAIN_MINIMUM
from tests.support import live

SLUG = "save-russian-lgbt-network"
PAGE = f"/admin/petitions/{SLUG}/domains"


def _owner_key(url: str) -> str:
    async def make() -> str:
        storage = Storage(url)
        await storage.connect()
        try:
            key = access_keys.generate(access_keys.OWNER)
            await storage.add_access_key(key.id, access_keys.OWNER, key.digest, "test")
            return key.text
        finally:
            await storage.disconnect()

    return asyncio.run(make())


def _sign(c: httpx.Client, email: str) -> None:
    token = c.get(f"/api/petitions/{SLUG}/token").json()["token"]
    person = live.new_signer("D")
    answer = c.post(f"/api/petitions/{SLUG}/signatures",
                    json={"token": token, "name": person["name"], "email": email})  # fmt: skip
    assert answer.status_code == 201, answer.text


def test_a_domain_is_counted_only_when_typed_and_only_above_the_minimum(
    server: live.LiveServer,
) -> None:
    key = _owner_key(server.env["DATABASE_URL"])
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        for i in range(DOMAIN_MINIMUM):
            _sign(
                c, f"zt.many{i}.{live.new_signer()['email']}".replace("@example.org", "@Большой.рф")
            )
        for i in range(DOMAIN_MINIMUM - 1):
            _sign(c, f"zt.few{i}@small.example")
        assert c.get(PAGE).status_code in (302, 303, 401)  # not signed in: no count
        assert c.post("/admin/login", data={"key": key}).status_code == 303
        page = c.get(PAGE)
        assert page.status_code == 200 and "example.org" in page.text  # the placeholder only
        for typed in ("большой.рф", "@БОЛЬШОЙ.РФ", "xn--90aqflb3d1a.xn--p1ai"):
            found = c.get(PAGE, params={"domain": typed}).text
            assert f"<strong>{DOMAIN_MINIMUM}</strong> counted signatures" in found, typed
        few = c.get(PAGE, params={"domain": "small.example"}).text
        assert f"Fewer than {DOMAIN_MINIMUM}" in few
        none = c.get(PAGE, params={"domain": "nobody.example"}).text
        assert f"Fewer than {DOMAIN_MINIMUM}" in none  # the same words as a few: nothing told
        bad = c.get(PAGE, params={"domain": "not a domain"})
        assert bad.status_code == 200 and "not a domain an address can have" in bad.text
        # In a Russian browser, the same answers in Russian.
        ru = i18n.catalog("ru")
        russian = c.get(PAGE, params={"domain": "small.example"}, headers={"Accept-Language": "ru"})
        assert ru.admin("domains_link") in russian.text
        assert f"меньше {DOMAIN_MINIMUM} учтённых подписей" in russian.text
