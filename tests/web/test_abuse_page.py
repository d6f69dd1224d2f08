"""The dashboard's quarantine, trending and bulk page on a live server, on both engines: counts
per hour and partner (never a name or an address), owners only, the CSRF token, a preview that
changes nothing, an action that every count follows at once, field errors in the reader's
language."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.domain import access_keys, i18n
from server.store.storage import Storage
from tests.support import backends, live
from tests.web.test_admin import in_storage, new_key

SLUG = "save-russian-lgbt-network"
PAGE = f"/admin/petitions/{SLUG}/signatures"
BURST = 5  # RATE_NET_PER_MINUTE=1: five minutes' worth, then quarantine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[live.LiveServer]:
    url = backends.sqlite_url(tmp_path) if request.param == "sqlite" else (
        request.getfixturevalue("postgres").create()
    )  # fmt: skip
    live.prepare(url)
    with live.LiveServer(url, tmp_path, RATE_NET_PER_MINUTE=1) as running:
        yield running


def count(c: httpx.Client) -> int:
    value: int = c.get(f"/api/petitions/{SLUG}").json()["signatures"]
    return value


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found[1]


def test_owners_see_the_quarantine_preview_and_restore_it(server: live.LiveServer) -> None:
    async def keys(storage: Storage) -> tuple[access_keys.Key, access_keys.Key]:
        pid = await storage.petition_id(SLUG)
        assert pid is not None
        partner = await storage.add_partner(pid, "ngo-a", "NGO A")
        owner = await new_key(storage, access_keys.OWNER)
        return owner, await new_key(
            storage, access_keys.PARTNER, petition_id=pid, partner_id=partner.id
        )

    owner, partner = in_storage(server.env["DATABASE_URL"], keys)
    signers = []
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        deadline = time.monotonic() + 10
        while "NGO A" not in c.get(f"/widget/{SLUG}?partner=ngo-a").text:  # the registry knows it
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for _ in range(BURST + 3):
            signers.append(live.new_signer())
            token = c.get(f"/api/petitions/{SLUG}/token", params={"partner": "ngo-a"}).json()
            answer = c.post(f"/api/petitions/{SLUG}/signatures",
                            json={"token": token["token"], **signers[-1]})  # fmt: skip
            assert answer.status_code == 201
        assert count(c) == BURST
        assert c.get(PAGE).status_code == 401  # not signed in
        # A partner key may not see it.
        assert c.post("/admin/login", data={"key": partner.text}).status_code == 303
        assert c.get(PAGE).status_code == 403
        assert c.post("/admin/login", data={"key": owner.text}).status_code == 303
        page = c.get(PAGE)
        assert page.status_code == 200
        assert "<strong>5</strong> counted, <strong>3</strong> quarantined" in page.text
        table = page.text.split('id="quarantined"')[1].split("</table>")[0]
        assert "ngo-a" in table and ">3<" in table
        trending = page.text.split('id="trending-partner"')[1].split("</table>")[0]
        assert "ngo-a" in trending and ">8<" in trending and "no history yet" in trending
        for person in signers:  # never a name or an address
            assert person["name"] not in page.text and person["email"] not in page.text
        # Without the session's CSRF token: refused, nothing changes.
        form = {"action": "restore", "quarantined": "1", "apply": "1"}
        assert c.post(PAGE, data=form).status_code == 403
        assert c.post(PAGE, data={**form, "csrf": "forged"}).status_code == 403
        token = csrf(page)
        # A preview says how many, and changes nothing.
        preview = c.post(PAGE, data={"action": "restore", "quarantined": "1", "csrf": token})
        assert preview.status_code == 200
        assert "would restore <strong>3</strong> signatures" in preview.text
        assert 'name="apply"' in preview.text
        assert count(c) == BURST
        # Applied, every count follows at once on this worker.
        done = c.post(PAGE, data={**form, "csrf": token})
        assert done.status_code == 200
        assert "Restored <strong>3</strong> signatures" in done.text
        assert "now counts <strong>8</strong>" in done.text
        assert count(c) == BURST + 3
        invalidated = c.post(PAGE, data={"action": "invalidate", "partner": "ngo-a",
                                         "apply": "1", "csrf": token})  # fmt: skip
        assert "Invalidated <strong>8</strong> signatures" in invalidated.text
        assert count(c) == 0
        # Field errors name the field, in the reader's language; nothing is changed.
        bad = c.post(PAGE, data={"action": "restore", "from": "yesterday", "csrf": token})
        assert bad.status_code == 400
        assert 'id="bulk-from" name="from" value="yesterday"' in bad.text
        assert 'aria-invalid="true" aria-describedby="bulk-from-error"' in bad.text
        assert "Not an ISO 8601 date or time" in bad.text
        nothing = c.post(PAGE, data={"action": "restore", "csrf": token})
        assert nothing.status_code == 400 and "Choose at least one filter" in nothing.text
        ru = c.post(PAGE, data={"action": "restore", "from": "вчера", "csrf": token},
                    headers={"Accept-Language": "ru"})  # fmt: skip
        assert i18n.catalog("ru").admin("bulk_bad_time") in ru.text
        assert count(c) == 0
        # By email domain (typed, matched by its keyed hash) and by time window, as the CLI.
        now = time.time()
        hour = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
        past = time.strftime("%Y-%m-%d", time.gmtime(now - 3 * 86400))

        def restore(**filters: str) -> httpx.Response:
            return c.post(PAGE, data={"action": "restore", "csrf": token, **filters})

        assert "would restore <strong>0</strong>" in restore(domain="elsewhere.example").text
        assert "would restore <strong>0</strong>" in restore(until=past).text
        assert "would restore <strong>8</strong>" in restore(domain="EXAMPLE.org").text
        window = restore(**{"from": hour, "until": later, "domain": "example.org", "apply": "1"})
        assert "Restored <strong>8</strong> signatures" in window.text
        assert count(c) == BURST + 3
