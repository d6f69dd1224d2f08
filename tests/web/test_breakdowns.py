"""Totals by country and language on a live server, on both engines: the public petition JSON
of a petition with `[public] by_country = true` (small cells hidden, the ETag following the
totals), none for a petition without it, the owner's keyed view (exact, with language) and a
partner's (its own signers, small cells hidden, its own count exact), and the dashboard's pack
(no names, small cells hidden as for the public)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from server.domain import access_keys
from server.store.storage import Storage
from server.web import api
from tests.support import backends, live, petitions
from tests.support.pdf import text_of as pdf_text

SLUG = "by-country"
PLAIN = petitions.example()
PUBLISHING = dataclasses.replace(PLAIN, slug=SLUG, public_by_country=True)


@dataclasses.dataclass
class World:
    server: live.LiveServer
    keys: dict[str, access_keys.Key]


def sign(c: httpx.Client, country: str, partner: str = "", lang: str = "en") -> None:
    params = {"partner": partner, "lang": lang}
    token = c.get(f"/api/petitions/{SLUG}/token", params=params).json()["token"]
    body = {"token": token, **live.new_signer(), "country": country, "lang": lang}
    response = c.post(f"/api/petitions/{SLUG}/signatures", json=body)
    assert response.status_code == 201, response.text


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("breakdowns")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    live.prepare(url, [PLAIN, PUBLISHING])

    async def build() -> dict[str, access_keys.Key]:
        storage = Storage(url)
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            a = await storage.add_partner(pid, "ngo-a", "NGO A")
            keys = {}
            for name, role, scope in (
                ("owner", access_keys.OWNER, {}),
                ("a", access_keys.PARTNER, {"petition_id": pid, "partner_id": a.id}),
            ):
                key = access_keys.generate(role)
                await storage.add_access_key(key.id, role, key.digest, "test", **scope)
                keys[name] = key
            return keys
        finally:
            await storage.disconnect()

    keys = asyncio.run(build())
    with live.LiveServer(url, folder, breakdown_refresh="0.2") as server:
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            for _ in range(11):
                sign(c, "RU", "ngo-a", lang="ru")
            for _ in range(2):
                sign(c, "KZ", "ngo-a", lang="ru")
            sign(c, "RU")
            for _ in range(12):
                sign(c, "DE")
        yield World(server, keys)


def keyed(world: World, who: str) -> dict[str, Any]:
    bearer = {"Authorization": f"Bearer {world.keys[who].text}"}
    response = httpx.get(world.server.url(f"/api/petitions/{SLUG}"), headers=bearer)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def public_when(world: World, signatures: int) -> httpx.Response:
    """The public JSON once its exact cells add up to `signatures` (the totals may lag
    `BREAKDOWN_REFRESH`, 0.2 s here, behind the count)."""
    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(world.server.url(f"/api/petitions/{SLUG}"))
        cells = response.json().get("by_country", [])
        if sum(cell["signatures"] or 0 for cell in cells) >= signatures:
            return response
        assert time.monotonic() < deadline, cells
        time.sleep(0.1)


def test_the_public_sees_countries_with_small_cells_hidden(world: World) -> None:
    response = public_when(world, 24)  # DE 12 and RU 12 are exact; KZ's 2 are not shown
    assert response.json()["by_country"] == [
        {"country": "DE", "signatures": 12},
        {"country": "RU", "signatures": 12},
        {"country": "KZ", "signatures": None, "fewer_than": 10},
    ]
    assert "by_language" not in response.json()  # only the country is published


def test_a_petition_without_it_publishes_no_countries(world: World) -> None:
    data = httpx.get(world.server.url(f"/api/petitions/{PLAIN.slug}")).json()
    assert "by_country" not in data


def test_the_etag_follows_the_totals_by_country(world: World) -> None:
    before = public_when(world, 24)
    etag = before.headers["etag"]
    with httpx.Client(base_url=world.server.base_url, timeout=30) as c:
        sign(c, "DE")
    after = public_when(world, 25)
    assert {"country": "DE", "signatures": 13} in after.json()["by_country"]
    assert after.headers["etag"] != etag
    url = world.server.url(f"/api/petitions/{SLUG}")
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 200
    again = httpx.get(url, headers={"If-None-Match": after.headers["etag"]})
    assert again.status_code == 304


def test_the_owner_sees_every_cell_exactly_with_languages(world: World) -> None:
    data = keyed(world, "owner")
    countries = {cell["country"]: cell for cell in data["by_country"]}
    assert countries["KZ"] == {"country": "KZ", "signatures": 2}
    assert countries["RU"]["signatures"] == 12
    languages = {cell["lang"]: cell["signatures"] for cell in data["by_language"]}
    assert languages["ru"] == 13
    assert sum(languages.values()) == data["signatures"]


def test_a_partner_sees_its_own_signers_with_small_cells_hidden(world: World) -> None:
    data = keyed(world, "a")
    assert data["by_country"] == [
        {"country": "RU", "signatures": 11},
        {"country": "KZ", "signatures": None, "fewer_than": 10},
    ]
    assert data["by_language"] == [{"lang": "ru", "signatures": 13}]
    # Its own total stays exact.
    assert [(p["code"], p["signatures"]) for p in data["partners"]] == [("ngo-a", 13)]


# --- The dashboard -------------------------------------------------------------------------------


def signed_in(world: World, who: str) -> httpx.Client:
    c = httpx.Client(base_url=world.server.base_url, timeout=30)
    assert c.post("/admin/login", data={"key": world.keys[who].text}).status_code == 303
    return c


def test_the_owner_dashboard_shows_exact_breakdowns_and_the_pack(world: World) -> None:
    with contextlib.closing(signed_in(world, "owner")) as c:
        page = c.get(f"/admin/petitions/{SLUG}").text
        assert '<th scope="row">Kazakhstan</th><td class="num">2</td>' in page
        assert '<th scope="row">Russian</th><td class="num">13</td>' in page
        assert f"/admin/petitions/{SLUG}/delivery.pdf" in page
        assert "<strong>Without names</strong>" in page
        own_page = c.get(f"/admin/petitions/{SLUG}/partners/ngo-a").text
        assert '<th scope="row">Kazakhstan</th><td class="num">2</td>' in own_page


def test_a_partner_page_hides_small_cells(world: World) -> None:
    with contextlib.closing(signed_in(world, "a")) as c:
        page = c.get(f"/admin/petitions/{SLUG}/partners/ngo-a").text
    assert '<th scope="row">Kazakhstan</th><td class="num">fewer than 10</td>' in page
    assert '<th scope="row">Russia</th><td class="num">11</td>' in page
    assert "Germany" not in page  # not its signers


def test_the_dashboard_pack_has_no_names_and_only_the_owner_gets_it(world: World) -> None:
    with contextlib.closing(signed_in(world, "owner")) as c:
        pdf = c.get(f"/admin/petitions/{SLUG}/delivery.pdf")
        sheet = c.get(f"/admin/petitions/{SLUG}/delivery.csv")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert pdf.headers["cache-control"] == "no-store"
    assert sheet.status_code == 200
    assert "Zelda Testova" not in sheet.text and "@" not in sheet.text
    assert "\r\nname,country,country_name" not in sheet.text  # no list of names at all
    assert "\r\nDE,Germany,13\r\n" in sheet.text or "\r\nDE,Germany,12\r\n" in sheet.text
    # The pack goes to the target: KZ's 2 signers are "fewer than 10" there, as for the public.
    assert "\r\nKZ,Kazakhstan,<10\r\n" in sheet.text and "Kazakhstan,2" not in sheet.text
    if shutil.which("pdftotext"):
        text = pdf_text(pdf.content)
        assert "This copy has no names" in text
        assert "Kazakhstan fewer than 10" in text and "Kazakhstan 2" not in text
        assert "Zelda Testova" not in text and "NGO A" not in text
    with contextlib.closing(signed_in(world, "a")) as c:
        assert c.get(f"/admin/petitions/{SLUG}/delivery.pdf").status_code == 403


def test_public_countries_keep_the_last_totals_while_the_database_fails() -> None:
    """The public JSON never needed the database: a failed read keeps the last totals (or
    leaves them out before any), instead of failing the document."""

    class Database:
        failing = False

        async def fetch_all(self, sql: str, values: dict[str, Any]) -> list[tuple[str, int]]:
            if self.failing:
                raise OSError("the database is down")
            return [("RU", 12), ("KZ", 3)]

    database = Database()
    services: Any = SimpleNamespace(
        storage=SimpleNamespace(database=database),
        settings=SimpleNamespace(breakdown_refresh=0.0),
    )
    entry: Any = SimpleNamespace(id=1, slug="x")
    countries = api._PublicCountries()
    database.failing = True
    assert asyncio.run(countries.get(services, entry, 15)) is None
    database.failing = False
    read = [{"country": "RU", "signatures": 12},
            {"country": "KZ", "signatures": None, "fewer_than": 10}]  # fmt: skip
    assert asyncio.run(countries.get(services, entry, 15)) == read
    database.failing = True
    assert asyncio.run(countries.get(services, entry, 16)) == read
