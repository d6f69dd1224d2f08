"""A confirmation link expires on the server's own clock, on both engines: the app built as
`wiring` builds it, but with a `ManualClock`, served by uvicorn in this process on 127.0.0.1,
so a test moves time past `CONFIRM_LIFETIME` without waiting for it.

The link pages used to read `time.time()` themselves: however far the injected clock moved,
a link stayed valid until the machine's own clock caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from server import settings as settings_module
from server import wiring
from server.store.clock import ManualClock
from server.web.app import create_app
from server.web.services import Services
from tests.support import live, petitions

SLUG = petitions.example().slug
LIFETIME = 600  # CONFIRM_LIFETIME's minimum: few sleepers for the clock to wake on its way


@contextlib.asynccontextmanager
async def served(database_url: str, clock: ManualClock) -> AsyncIterator[
    tuple[httpx.AsyncClient, Services]
]:  # fmt: skip
    """The app on `clock`, served on this event loop (so the test can move the clock while
    requests are answered), and a client for it."""
    port = live.free_port()
    settings = settings_module.load(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEYS": live.SECRET,
            "PORT": str(port),
            "TOKEN_MIN_AGE": "0",
            "RATE_SIGN_PER_MINUTE": "0",
            "RATE_CLIENT_PER_MINUTE": "0",
            "CONFIRM_LIFETIME": str(LIFETIME),
            "COUNT_REFRESH": "60",
        }
    )
    services = wiring.build_services(settings, clock)
    config = uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "the app did not start"
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, services
    finally:
        server.should_exit = True
        await task


async def confirm_token(services: Services) -> str:
    """The link in the one mail waiting in the outbox (no mail server: it waits there)."""
    (row,) = await services.storage.database.fetch_all("SELECT payload FROM outbox")
    payload = json.loads(row[0])
    if services.email_hasher is None:  # PostgreSQL without EMAIL_HASH_KEY: kept in clear
        return str(payload["confirm"])
    secrets = services.email_hasher.open_mail(payload["box"])  # as the mail job opens it
    assert secrets is not None
    return secrets["confirm"]


@pytest.mark.parametrize("start", ["now", "another day"])
def test_a_confirmation_link_expires_when_the_injected_clock_says(
    database_url: str, start: str
) -> None:
    """From the machine's time, or from a day long past: the writer dates the link on the same
    clock (it used the machine's, so a link written under a clock set in the past would not
    expire until that clock had caught up with the machine's)."""
    live.prepare(database_url, [petitions.example("email")])

    async def check() -> None:
        clock = ManualClock(float(int(time.time())) if start == "now" else 1_700_000_000.0)
        async with served(database_url, clock) as (client, services):
            token = (await client.get(f"/api/petitions/{SLUG}/token")).json()["token"]
            signed = await client.post(
                f"/api/petitions/{SLUG}/signatures", json={"token": token, **live.new_signer()}
            )
            assert signed.status_code == 202
            path = f"/confirm/{await confirm_token(services)}"
            assert (await client.get(path)).status_code == 200
            await clock.advance(LIFETIME - 1)
            assert (await client.get(path)).status_code == 200  # its last second
            await clock.advance(2)
            for method in ("GET", "POST"):
                page = await client.request(method, path)
                assert page.status_code == 410, method
                assert f'href="/widget/{SLUG}"' in page.text  # a way to sign again
            count = (await client.get(f"/api/petitions/{SLUG}")).json()["signatures"]
            assert count == 0  # the POST confirmed nothing
            rows = await services.storage.database.fetch_all("SELECT id FROM signatures")
            assert rows == []

    asyncio.run(check())
