"""Limits that hold across workers: two worker processes of a live server, on SQLite and on
PostgreSQL, give a client its limit once, not once per worker. Form tokens (the widget
document's too) and wrong dashboard keys are limited per address like signatures."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.domain import access_keys, i18n
from server.domain.form_tokens import FormTokens
from server.domain.ratelimit import FLUSH_EVERY
from server.store.storage import Storage
from tests.support import backends, live

SLUG = "save-russian-lgbt-network"
SIGN = f"/api/petitions/{SLUG}/signatures"
LIMIT = 10  # RATE_SIGN_PER_MINUTE of these servers
SETTLE = 8 * FLUSH_EVERY  # long enough for every worker to have flushed and read back


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def two_workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[live.LiveServer]:
    if request.param == "sqlite":
        url = backends.sqlite_url(tmp_path)
    else:
        url = request.getfixturevalue("postgres").create()
    live.prepare(url)
    settings = {"workers": 2, "rate_sign_per_minute": LIMIT, "rate_login_per_minute": 10}
    with live.LiveServer(url, tmp_path, **settings) as srv:
        yield srv


def sign_at_once(srv: live.LiveServer, count: int) -> list[int]:
    """`count` signatures sent together, each on a connection of its own, so that both
    workers take some."""
    minter = FormTokens([live.SECRET], lifetime=7200, min_age=0)
    bodies = [{"token": minter.issue(SLUG), **live.new_signer()} for _ in range(count)]

    def post(body: dict[str, str]) -> int:
        return httpx.post(srv.url(SIGN), json=body, timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(post, bodies))


def test_the_sign_limit_holds_over_two_workers(two_workers: live.LiveServer) -> None:
    """Regression (CI): a worker that had served none of the first minute's signatures admitted
    some of the next burst before its first flush of its own told it of the client. Keys at
    half their limit are now announced to every worker, served or not."""
    first = sign_at_once(two_workers, LIMIT)
    assert first == [201] * LIMIT  # the whole minute may come at once
    time.sleep(SETTLE)  # not a timed assertion: both workers flush their counts meanwhile
    second = sign_at_once(two_workers, 2 * LIMIT)
    assert second == [429] * (2 * LIMIT)  # per worker, the other would admit LIMIT


def test_form_tokens_are_limited_over_two_workers(two_workers: live.LiveServer) -> None:
    """Two tokens per signature a minute (`wiring.TOKENS_PER_SIGNATURE`); the widget
    document, which carries one, counts as one."""
    tokens = 2 * LIMIT

    def document(_: int) -> str:
        return httpx.get(two_workers.url(f"/widget/{SLUG}"), timeout=10).text

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        pages = list(pool.map(document, range(tokens)))
    with_token = [p for p in pages if _token(p)]
    assert len(with_token) == tokens
    time.sleep(SETTLE)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        later = list(pool.map(document, range(tokens)))
    assert [p for p in later if _token(p)] == []
    wait = i18n.catalog("en")("token_wait")
    assert all(wait in p and '"token_retry":10' in p.replace(" ", "") for p in later)
    refused = httpx.get(two_workers.url(f"/api/petitions/{SLUG}/token"))
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 65


def _token(page: str) -> str:
    found = re.search(r'name="token" value="([^"]*)"', page)
    assert found is not None
    return found[1]


def test_documents_past_the_token_limit_still_render(tmp_path: Path) -> None:
    """Regression: 700 fresh tokens in a row came from /widget/{slug} while /token already
    answered 429."""
    url = backends.sqlite_url(tmp_path)
    live.prepare(url)
    with live.LiveServer(url, tmp_path, rate_sign_per_minute=3, rate_client_per_minute=0) as srv:
        pages = [httpx.get(srv.url(f"/widget/{SLUG}?lang=ru")) for _ in range(10)]
        assert [p.status_code for p in pages] == [200] * 10
        assert [bool(_token(p.text)) for p in pages] == [True] * 6 + [False] * 4
        assert i18n.catalog("ru")("token_wait") in pages[-1].text
        assert httpx.get(srv.url(f"/api/petitions/{SLUG}/token")).status_code == 429


# --- Wrong keys ------------------------------------------------------------------------------


def owner_key(url: str) -> access_keys.Key:
    async def make() -> access_keys.Key:
        storage = Storage(url)
        await storage.connect()
        try:
            key = access_keys.generate(access_keys.OWNER)
            await storage.add_access_key(key.id, key.role, key.digest, "test")
            return key
        finally:
            await storage.disconnect()

    return asyncio.run(make())


def test_bearer_key_guesses_are_limited_over_two_workers(two_workers: live.LiveServer) -> None:
    """Regression: 1,200 guesses at bearer keys, and no 429."""
    key = owner_key(two_workers.env["DATABASE_URL"])
    wrong = access_keys.generate(access_keys.OWNER).text  # well formed, unknown

    def guess(path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {wrong}"}
        return httpx.get(two_workers.url(path), headers=headers, timeout=10)

    paths = [f"/admin/petitions/{SLUG}", f"/api/petitions/{SLUG}"] * 15
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = [r.status_code for r in pool.map(guess, paths)]
    assert 401 in first
    time.sleep(SETTLE)
    later = [guess(p) for p in paths[:6]]
    assert {r.status_code for r in later} == {429}
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in later)
    # Past the limit the key is not even looked at: the right one waits too.
    right = httpx.get(
        two_workers.url(f"/api/petitions/{SLUG}"),
        headers={"Authorization": f"Bearer {key.text}"},
    )
    assert right.status_code == 429
    # Others are not affected.
    other = httpx.Client(
        base_url=two_workers.base_url,
        transport=httpx.HTTPTransport(local_address="127.0.0.2"),
    )
    with other:
        response = other.get(
            f"/api/petitions/{SLUG}", headers={"Authorization": f"Bearer {key.text}"}
        )
        assert response.status_code == 200


def test_failed_sign_ins_count_with_bearer_guesses(two_workers: live.LiveServer) -> None:
    wrong = access_keys.generate(access_keys.OWNER).text
    with httpx.Client(base_url=two_workers.base_url) as c:
        statuses = [c.post("/admin/login", data={"key": wrong}).status_code for _ in range(12)]
    assert statuses[0] == 401 and statuses[-1] == 429
    time.sleep(SETTLE)
    guesses = []
    for _ in range(4):  # new connections: either worker
        guesses.append(
            httpx.get(
                two_workers.url(f"/api/petitions/{SLUG}"),
                headers={"Authorization": f"Bearer {wrong}"},
            ).status_code
        )
    # Even a worker that never saw this client knows of it: the other announced it.
    assert guesses == [429] * 4
