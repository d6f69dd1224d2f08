"""The aggregate limit per IPv4 /24 (and IPv6 /48) on a live server, on both engines: a bounded
flood of bots with fresh tokens from many addresses of one /24 is counted at most up to the
limit and the rest quarantined, never refused; a classroom (30 signers behind one address, 300
behind one /24) all sign, with the widget's own retries, under the default limits.

Source addresses are 127.0.0.x on loopback (Linux routes the whole 127.0.0.0/8 there), so
every client is a distinct address of one /24. `WORKERS` is the number of server processes:
the aggregate limit counts on the limits' shared store (`SharedLimiter`), so one worker and two
give the same counts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.domain import abuse
from server.domain.ratelimit import FLUSH_EVERY
from server.settings import SETTINGS
from server.store.storage import Storage
from tests.support import backends, live

SLUG = "save-russian-lgbt-network"
SIGN = f"/api/petitions/{SLUG}/signatures"
WORKERS = [1, 2]
SETTLE = 8 * FLUSH_EVERY  # long enough for every worker to have flushed and read back
# The production defaults, which tests/support/live.py turns off for every other test.
DEFAULTS: dict[str, str | int] = {
    name: SETTINGS[name].default
    for name in ("RATE_SIGN_PER_MINUTE", "RATE_CLIENT_PER_MINUTE", "RATE_NET_PER_MINUTE",
                 "TOKEN_MIN_AGE")
}  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = backends.sqlite_url(tmp_path) if request.param == "sqlite" else (
        request.getfixturevalue("postgres").create()
    )  # fmt: skip
    live.prepare(url)
    return url


def clients(server: live.LiveServer, addresses: int) -> Iterator[httpx.Client]:
    """One client per source address 127.0.0.2, 127.0.0.3, ... of the one /24."""
    for i in range(addresses):
        transport = httpx.HTTPTransport(local_address=f"127.0.0.{2 + i}")
        yield httpx.Client(base_url=server.base_url, transport=transport, timeout=60)


def document_token(client: httpx.Client) -> str:
    """The token the widget's document carries, as the iframe gets it (else `/token`)."""
    found = re.search(r'name="token" value="([^"]+)"', client.get(f"/widget/{SLUG}").text)
    if found:
        return found[1]
    issued: str = client.get(f"/api/petitions/{SLUG}/token").json()["token"]
    return issued


def widget_send(client: httpx.Client, token: str, signer: dict[str, str]) -> tuple[int, int]:
    """`send()` of widget/widget.js: a fresh token for a used or expired one (twice), a wait
    for a too fresh one (twice), and up to three waits of `Retry-After` (at most 60 s) on 429
    or 503. Returns the final status and the seconds the server asked it to wait."""
    waited = 0
    attempt = 0
    while True:
        response = client.post(SIGN, json={"token": token, **signer})
        retry_after = min(60, int(response.headers.get("retry-after", "0") or 0))
        error = response.json().get("error") if response.status_code >= 400 else None
        if error in ("expired_token", "invalid_token", "token_used") and attempt < 2:
            token = client.get(f"/api/petitions/{SLUG}/token").json()["token"]
        elif error == "token_too_fresh" and attempt < 2:
            waited += retry_after or 2
            time.sleep(retry_after or 2)
        elif response.status_code in (429, 503) and retry_after and attempt < 3:
            waited += retry_after
            time.sleep(retry_after)
        else:
            return response.status_code, waited
        attempt += 1


def stored_states(url: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        storage = Storage(url)
        await storage.connect()
        try:
            rows = await storage.database.fetch_all(
                "SELECT status, COUNT(*) FROM signatures GROUP BY status"
            )
            return {r[0]: int(r[1]) for r in rows}
        finally:
            await storage.disconnect()

    return asyncio.run(read())


def count(server: live.LiveServer, expected: int) -> int:
    """The published count once it shows `expected`, or what it shows after a few refreshes:
    each worker reads the others' commits (and, on PostgreSQL, concurrent groups' increments)
    every `COUNT_REFRESH` (1 s), so a count read at once may be a second behind."""
    deadline = time.monotonic() + 5
    while True:
        value: int = httpx.get(server.url(f"/api/petitions/{SLUG}")).json()["signatures"]
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def sign_all(
    server: live.LiveServer, people: list[tuple[httpx.Client, dict[str, str]]]
) -> list[tuple[int, int]]:
    """Everyone loads the widget, takes the few seconds a person takes (`TOKEN_MIN_AGE`), then
    signs, all at once, with the widget's retries."""
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        tokens = list(pool.map(lambda p: document_token(p[0]), people))
        time.sleep(int(server.env["TOKEN_MIN_AGE"]) + 0.5)
        return list(
            pool.map(
                lambda p: widget_send(p[1][0], p[0], p[1][1]), zip(tokens, people, strict=True)
            )
        )


@pytest.mark.parametrize("workers", WORKERS)
def test_a_flood_from_one_network_is_counted_up_to_the_limit_and_the_rest_quarantined(
    database: str, tmp_path: Path, workers: int
) -> None:
    """The flood comes in two waves: the limit's burst, then, once every worker has flushed,
    the rest at once. Counted per process, each of two workers would have admitted about half
    the burst and would count about as many again from the second wave; shared, none of it
    counts. (Within one flush, before any worker has read the others' counts, a burst may pass
    the limit by what each worker admits meanwhile: docs/privacy.md, "Rate limits".)"""
    per_minute, bots = 6, 120  # 30 in any five minutes, which may come at once
    burst = per_minute * abuse.NETWORK_BURST_MINUTES
    settings: dict[str, str | int] = {**DEFAULTS, "RATE_NET_PER_MINUTE": per_minute}
    with live.LiveServer(database, tmp_path, WORKERS=workers, **settings) as server:
        started = time.monotonic()
        pool = list(clients(server, bots))
        try:
            people = [(c, live.new_signer("F")) for c in pool]
            answers = sign_all(server, people[:burst])
            time.sleep(SETTLE)  # not a timed assertion: every worker flushes meanwhile
            answers += sign_all(server, people[burst:])
        finally:
            for c in pool:
                c.close()
        minutes = (time.monotonic() - started) / 60
        assert {status for status, _ in answers} == {201}  # never refused
        counted = stored_states(database).get("counted", 0)
        assert count(server, counted) == counted
        # The limit's burst, and what it refilled while the flood ran (one more for rounding).
        assert burst <= counted <= burst + int(per_minute * minutes) + 1
        assert stored_states(database) == {"counted": counted, "quarantined": bots - counted}
        assert f'aria-label="{counted} signed' in httpx.get(server.url(f"/badge/{SLUG}.svg")).text


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("addresses,signers", [(1, 30), (150, 300)])
def test_a_classroom_behind_one_address_or_one_network_all_sign(
    database: str, tmp_path: Path, workers: int, addresses: int, signers: int
) -> None:
    """Under the default limits: 30 signers behind one address (the per-address limit's
    burst is 120, so none is refused), and 300 behind one /24, 2 per address (the aggregate
    limit's burst is 300: all counted, none even quarantined). None waits, in all, anywhere
    near 5 minutes."""
    with live.LiveServer(database, tmp_path, WORKERS=workers, **DEFAULTS) as server:
        pool = list(clients(server, addresses))
        try:
            people = [(pool[i % addresses], live.new_signer("C")) for i in range(signers)]
            answers = sign_all(server, people)
        finally:
            for c in pool:
                c.close()
        assert [status for status, _ in answers] == [201] * signers
        assert max(waited for _, waited in answers) < 300
        assert count(server, signers) == signers
        assert stored_states(database) == {"counted": signers}
