"""The dashboard's charts on a live server, on SQLite and PostgreSQL, for a petition whose
`timezone` is Europe/Moscow (UTC+3): days and hours bucketed and labelled in that zone, the
chart toward the goal with its projection, and partners compared over time."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import html
import re
import zoneinfo
from collections.abc import Iterator

import httpx
import pytest

from server.domain import access_keys
from server.store.storage import Storage
from tests.support import backends, live, petitions

SLUG = "save-russian-lgbt-network"
ADMIN = f"/admin/petitions/{SLUG}"
AUTO = "climbing"
MOSCOW = zoneinfo.ZoneInfo("Europe/Moscow")


@dataclasses.dataclass(frozen=True)
class Site:
    server: live.LiveServer
    owner: access_keys.Key
    late_hour: int  # 21:00 UTC yesterday: 00:00 today in Moscow


async def _arrange(url: str, base: str) -> tuple[access_keys.Key, int]:
    """Two partners, five signatures through the API, then their times set by hand: three
    at 21:00 UTC yesterday (already today in Moscow), two at 20:00 UTC (yesterday there)."""
    storage = Storage(url)
    await storage.connect()
    try:
        pid = await storage.petition_id(SLUG)
        assert pid is not None
        await storage.add_partner(pid, "ngo-a", "NGO A")
        await storage.add_partner(pid, "ngo-b", "NGO B")
        key = access_keys.generate(access_keys.OWNER)
        await storage.add_access_key(key.id, access_keys.OWNER, key.digest, "t")
    finally:
        await storage.disconnect()
    async with httpx.AsyncClient(base_url=base) as c:
        await asyncio.sleep(0.5)  # the registry sees the partners
        for partner in ("ngo-a", "ngo-a", "ngo-a", "ngo-b", ""):
            token = (await c.get(f"/api/petitions/{SLUG}/token?partner={partner}")).json()
            body = {"token": token["token"], **live.new_signer()}
            assert (await c.post(f"/api/petitions/{SLUG}/signatures", json=body)).status_code == 201
    today = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    late = int(today.timestamp()) - 3 * 3600  # 21:00 UTC yesterday
    storage = Storage(url)
    await storage.connect()
    try:
        rows = await storage.database.fetch_all("SELECT id FROM signatures ORDER BY id")
        for n, row in enumerate(rows):
            moment = late if n < 3 else late - 3600
            await storage.database.execute(
                "UPDATE signatures SET created_at = :t, signed_at = :t WHERE id = :id",
                {"t": moment, "id": row[0]},
            )
    finally:
        await storage.disconnect()
    return key, late


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("charts")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    petition = dataclasses.replace(petitions.example(), timezone="Europe/Moscow", goal=100)
    # A second petition whose goal raises itself (`auto_goal`), signed only by its own test.
    climbing = dataclasses.replace(petitions.example(), slug=AUTO, goal=2, auto_goal=True)
    live.prepare(url, [petition, climbing])
    with live.LiveServer(url, folder) as server:
        key, late = asyncio.run(_arrange(url, server.base_url))
        yield Site(server, key, late)


def dashboard(site: Site, path: str = ADMIN) -> str:
    with httpx.Client(base_url=site.server.base_url) as c:
        assert c.post("/admin/login", data={"key": site.owner.text}).status_code == 303
        page = c.get(path)
        assert page.status_code == 200
        return page.text


def table(markup: str, chart_id: str) -> list[str]:
    figure = markup.split(f'<figure class="chart" id="{chart_id}">', 1)[1].split("</figure>")[0]
    return [html.unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", figure)]


def test_days_and_hours_are_the_petitions_zones(site: Site) -> None:
    page = dashboard(site)
    assert "Signatures per day (Europe/Moscow)" in page
    assert "Signatures per hour, last 48 hours (Europe/Moscow)" in page
    today = datetime.datetime.now(MOSCOW).date()
    cells = table(page, "per-day")
    by_day = dict(zip(cells[::2], cells[1::2], strict=True))
    today_label = f"{today:%b} {today.day}, {today.year}"
    yesterday = today - datetime.timedelta(days=1)
    # In UTC all five were yesterday; in Moscow three are today.
    assert by_day[today_label] == "3"
    assert by_day[f"{yesterday:%b} {yesterday.day}, {yesterday.year}"] == "2"
    hours = dict(zip(table(page, "per-hour")[::2], table(page, "per-hour")[1::2], strict=True))
    assert hours[f"{today:%b} {today.day}, 00:00"] == "3"  # 21:00 UTC, labelled in Moscow time


def test_the_chart_toward_the_goal_projects_the_pace(site: Site) -> None:
    page = dashboard(site)
    assert "Signatures so far, toward the goal of 100 (Europe/Moscow)" in page
    desc = re.search(r'<desc id="cumulative-desc">([^<]+)</desc>', page)
    assert desc is not None
    text = html.unescape(desc[1])
    assert text.startswith("5 signatures of 100.")
    assert "At the pace of the last 7 days (about 0.7 a day)" in text
    assert table(page, "cumulative")[-1] == "5"


def test_partners_are_compared_over_time(site: Site) -> None:
    page = dashboard(site)
    assert "Signatures per partner, added up day by day (Europe/Moscow)" in page
    figure = page.split('id="partners-over-time"', 1)[1].split("</figure>")[0]
    legend = html.unescape(re.sub(r"<[^>]+>", "", figure.split('<ul class="chart-legend">')[1]))
    assert "NGO A: 3" in legend and "NGO B: 1" in legend and "Without a partner: 1" in legend
    assert legend.index("NGO A") < legend.index("NGO B")  # the busiest first


def test_the_last_signature_is_told_in_the_petitions_zone(site: Site) -> None:
    """The last signatures came at 21:00 UTC yesterday: midnight today in Moscow, the zone the
    charts beside them speak (before, these times alone were written in UTC)."""
    page = dashboard(site)

    def in_moscow(moment: int) -> str:
        local = datetime.datetime.fromtimestamp(moment, MOSCOW)
        return f"{local:%b} {local.day}, {local.year}, {local:%H:%M} Europe/Moscow"

    stat = re.search(r'stat-small">([^<]+)</span>', page)
    assert stat is not None and html.unescape(stat[1]) == in_moscow(site.late_hour)
    assert in_moscow(site.late_hour).endswith(", 00:00 Europe/Moscow")
    partners = page.split('id="partners-h"', 1)[1]
    assert in_moscow(site.late_hour) in partners  # NGO A's last signature
    assert in_moscow(site.late_hour - 3600) in partners  # NGO B's, 23:00 the day before
    assert " UTC<" not in page


def test_an_auto_goal_petition_shows_the_goal_the_public_sees(site: Site) -> None:
    """Past its stored goal of 2 the public sees 100 (`auto_goal`): so does the dashboard,
    saying where it came from; raising the goal still starts from the stored one."""
    with httpx.Client(base_url=site.server.base_url) as c:
        for _ in range(2):
            token = c.get(f"/api/petitions/{AUTO}/token").json()["token"]
            body = {"token": token, **live.new_signer()}
            assert c.post(f"/api/petitions/{AUTO}/signatures", json=body).status_code == 201
        assert c.get(f"/api/petitions/{AUTO}").json()["goal"] == 100
    page = html.unescape(dashboard(site, f"/admin/petitions/{AUTO}"))
    assert "Goal 100 (raised by itself from 2)" in page
    assert '<progress max="100" value="2"' in page
    assert "Signatures so far, toward the goal of 100 (UTC)" in page
    assert "2 signatures of 100." in page
    assert "Raise the goal (now 2)" in page
    overview = dashboard(site, "/admin")
    row = overview.split(f"/admin/petitions/{AUTO}", 1)[1].split("</tr>")[0]
    assert '<td class="num">100</td>' in row and '<progress max="100"' in row
