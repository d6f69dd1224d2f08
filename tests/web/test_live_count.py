"""The live count that open widgets poll, `GET /widget/{slug}/count`, and the shown goal of an
`auto_goal` petition, over HTTP on a live server, on both engines."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.domain.petitions import Petition, parse
from server.store.storage import Storage
from server.web import widget
from tests.support import backends, live, petitions

SLUG = "save-russian-lgbt-network"
COUNT = f"/widget/{SLUG}/count"
EXAMPLE = petitions.example()
AUTO = parse(
    """
slug = "climbing"
lang = "en"
goal = 2
auto_goal = true
title = "A goal that climbs"
summary = "Summary"
target = "The council"
statement = "We ask the council."

[signing]
confirmation = "none"
"""
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("count")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    live.prepare(url, [EXAMPLE, AUTO])
    return url


@pytest.fixture(scope="module")
def server(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[live.LiveServer]:
    with live.LiveServer(database, tmp_path_factory.mktemp("count-server")) as running:
        yield running


@pytest.fixture
def client(server: live.LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


def reimport(database: str, petition: Petition) -> None:
    async def run() -> None:
        storage = Storage(database)
        await storage.connect()
        try:
            await storage.import_petitions([petition])
        finally:
            await storage.disconnect()

    asyncio.run(run())


def until(condition: object, what: str) -> None:
    """Until `condition()` holds: the server reloads petitions every COUNT_REFRESH (0.2 s)."""
    for _ in range(200):
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


def sign(client: httpx.Client, slug: str) -> httpx.Response:
    token = client.get(f"/api/petitions/{slug}/token").json()["token"]
    answer = client.post(
        f"/api/petitions/{slug}/signatures", json={"token": token, **live.new_signer()}
    )
    assert answer.status_code == 201, answer.text
    return answer


def test_the_answer_may_be_served_stale_and_read_from_any_site(client: httpx.Client) -> None:
    answer = client.get(COUNT)
    assert set(answer.json()) == {"signatures", "goal", "status"}
    directives = [d.strip() for d in answer.headers["cache-control"].split(",")]
    assert directives == [
        "public",
        f"max-age={widget.COUNT_MAX_AGE}",
        f"stale-while-revalidate={widget.COUNT_STALE_WHILE_REVALIDATE}",
        f"stale-if-error={widget.COUNT_STALE_IF_ERROR}",
    ]
    assert answer.headers["access-control-allow-origin"] == "*"
    unchanged = client.get(COUNT, headers={"If-None-Match": answer.headers["etag"]})
    assert unchanged.status_code == 304
    assert unchanged.headers["access-control-allow-origin"] == "*"
    assert unchanged.headers["cache-control"] == answer.headers["cache-control"]


def test_a_raised_goal_and_a_closing_change_the_etag(client: httpx.Client, database: str) -> None:
    """Before, the ETag was count-status: a raised goal got 304s for ever."""
    first = client.get(COUNT)
    etag, goal = first.headers["etag"], first.json()["goal"]
    raised = dataclasses.replace(EXAMPLE, goal=goal * 2)
    reimport(database, raised)
    until(lambda: client.get(COUNT).json()["goal"] == goal * 2, "the raised goal served")
    moved = client.get(COUNT, headers={"If-None-Match": etag})
    assert moved.status_code == 200, "a raised goal must reach widgets that hold the old ETag"
    assert moved.json()["goal"] == goal * 2 and moved.headers["etag"] != etag
    etag = moved.headers["etag"]
    reimport(database, dataclasses.replace(raised, status="closed"))
    until(lambda: client.get(COUNT).json()["status"] == "closed", "the closing served")
    closed = client.get(COUNT, headers={"If-None-Match": etag})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    # The widget's document carries the same validator as the count it shows.
    page = client.get(f"/widget/{SLUG}").text
    data = json.loads(re.search(r'id="pw-data">(.*?)</script>', page, re.S)[1])  # type: ignore[index]
    assert data["count_etag"] == closed.headers["etag"]
    reimport(database, EXAMPLE)  # as it was, for the other tests


def goals_shown(client: httpx.Client) -> set[int]:
    """The goal as the API, the live count, the badge and the widget show it."""
    api = client.get("/api/petitions/climbing").json()["goal"]
    count = client.get("/widget/climbing/count").json()["goal"]
    badge = client.get("/badge/climbing.svg").text
    page = client.get("/widget/climbing").text
    data = json.loads(re.search(r'id="pw-data">(.*?)</script>', page, re.S)[1])  # type: ignore[index]
    shown = {api, count, data["goal"]}
    assert all(f"{g:,}" in badge or str(g) in badge for g in shown), badge
    return shown


def stored_shown_goal(database: str) -> int:
    async def run() -> int:
        storage = Storage(database)
        await storage.connect()
        try:
            (entry,) = [e for e in await storage.petitions() if e.slug == "climbing"]
            return entry.shown_goal
        finally:
            await storage.disconnect()

    return asyncio.run(run())


def test_auto_goal_climbs_and_never_comes_down(
    client: httpx.Client, database: str, tmp_path: Path
) -> None:
    assert goals_shown(client) == {2}
    sign(client, "climbing")
    assert goals_shown(client) == {2}  # below the goal: the stored goal
    withdraw_url = sign(client, "climbing").json()["withdraw_url"]
    assert goals_shown(client) == {100}  # reached: the next step above the count
    until(lambda: stored_shown_goal(database) == 100, "the step stored")
    # A withdrawal takes the count back below the stored goal: the shown goal stays.
    path = httpx.URL(withdraw_url).path
    assert client.post(path).status_code == 200
    assert client.get("/api/petitions/climbing").json()["signatures"] == 1
    assert goals_shown(client) == {100}
    # And so it does after a restart, from what the database kept.
    restarted = live.LiveServer(database, tmp_path)
    with restarted, httpx.Client(base_url=restarted.base_url, timeout=30) as fresh:
        assert goals_shown(fresh) == {100}
