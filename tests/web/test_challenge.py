"""The proof-of-work challenge over HTTP, on both engines: the app as `wiring` builds it, on a
`ManualClock` (the clock "auto" counts on), served by uvicorn in this process on 127.0.0.1.

A token answer carries `challenge` while one is on; a signature without its solution, with a
wrong one or with one made for another token is `400 challenge_required` with a fresh token
and challenge; `"off"` is unaffected; `"auto"` turns on after the threshold of refusals and off
after its hold; the no-JavaScript form is accepted once its token is `FORM_WAIT` seconds old."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import time
from typing import Any

import httpx

from server.domain import challenge
from server.domain.form_tokens import FormTokens
from server.store.clock import ManualClock
from server.web import submission
from tests.support import live, petitions
from tests.web.test_link_expiry import served

SLUGS = {mode: f"challenge-{mode}" for mode in challenge.MODES}
FIELDS = {"algorithm", "challenge", "salt", "maxnumber", "signature", "expires"}


def prepare(database_url: str) -> None:
    live.prepare(
        database_url,
        [dataclasses.replace(petitions.example(challenge=m), slug=s) for m, s in SLUGS.items()],
    )


def solve(fields: dict[str, Any]) -> str:
    """What widget/challenge.js does: try every number up to maxnumber."""
    for n in range(int(fields["maxnumber"]) + 1):
        if hashlib.sha256(f"{fields['salt']}{n}".encode()).hexdigest() == fields["challenge"]:
            return str(n)
    raise AssertionError("no solution")


def sign(client: httpx.AsyncClient, slug: str, body: dict[str, Any]) -> Any:
    return client.post(f"/api/petitions/{slug}/signatures", json={**live.new_signer(), **body})


def page_data(page: str) -> dict[str, Any]:
    """The widget document's data for its script (`#pw-data`)."""
    found = re.search(r'id="pw-data">(.*?)</script>', page, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found[1])
    return data


def assert_challenge_required(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "challenge_required" and body["message"]
    assert set(body["challenge"]) == FIELDS and body["token"]  # a fresh challenge, and token
    return body


def test_on_asks_every_signature_for_its_own_solution(database_url: str) -> None:
    prepare(database_url)
    slug = SLUGS["on"]

    async def check() -> None:
        async with served(database_url, ManualClock(time.time())) as (client, _):
            issued = (await client.get(f"/api/petitions/{slug}/token")).json()
            assert set(issued["challenge"]) == FIELDS
            assert issued["challenge"]["algorithm"] == "SHA-256"
            assert issued["challenge"]["maxnumber"] == challenge.MAX_NUMBER
            token = issued["token"]
            missing = assert_challenge_required(await sign(client, slug, {"token": token}))
            assert missing["token"] != token
            wrong = {"token": token, "challenge_solution": "12345678"}
            assert_challenge_required(await sign(client, slug, wrong))
            solution = solve(issued["challenge"])
            signed = await sign(client, slug, {"token": token, "challenge_solution": solution})
            assert signed.status_code == 201, signed.text
            # Reused with another token (the fresh one of a refusal): refused, a new one given.
            reused = {"token": missing["token"], "challenge_solution": solution}
            again = assert_challenge_required(await sign(client, slug, reused))
            # The challenge a refusal gives is the one to solve with its token.
            retried = {"token": again["token"], "challenge_solution": solve(again["challenge"])}
            assert (await sign(client, slug, retried)).status_code == 201
            # And a solved token is still single use, as every token is.
            used = await sign(client, slug, {"token": token, "challenge_solution": solution})
            assert used.status_code == 409 and used.json()["error"] == "token_used"
            count = (await client.get(f"/api/petitions/{slug}")).json()["signatures"]
            assert count == 2

    asyncio.run(check())


def test_off_never_asks(database_url: str) -> None:
    prepare(database_url)
    slug = SLUGS["off"]

    async def check() -> None:
        async with served(database_url, ManualClock(time.time())) as (client, _):
            for _ in range(challenge.AUTO_THRESHOLD + 5):  # an attack's worth of refusals
                assert (await sign(client, slug, {"token": "forged"})).status_code == 400
            issued = (await client.get(f"/api/petitions/{slug}/token")).json()
            assert "challenge" not in issued
            assert (await sign(client, slug, {"token": issued["token"]})).status_code == 201
            page = await client.get(f"/widget/{slug}")
            assert "challenge" not in page_data(page.text)

    asyncio.run(check())


def test_auto_turns_on_after_the_threshold_and_off_after_the_hold(database_url: str) -> None:
    prepare(database_url)
    slug, other = SLUGS["auto"], SLUGS["on"]

    async def check() -> None:
        clock = ManualClock(time.time())
        async with served(database_url, clock) as (client, _):
            token = (await client.get(f"/api/petitions/{slug}/token")).json()
            assert "challenge" not in token
            assert (await sign(client, slug, {"token": token["token"]})).status_code == 201
            for _ in range(challenge.AUTO_THRESHOLD - 1):
                assert (await sign(client, slug, {"token": "forged"})).status_code == 400
            issued = (await client.get(f"/api/petitions/{slug}/token")).json()
            assert "challenge" not in issued  # one short of the threshold
            assert (await sign(client, slug, {"token": "forged"})).status_code == 400
            issued = (await client.get(f"/api/petitions/{slug}/token")).json()
            assert set(issued["challenge"]) == FIELDS  # on
            assert_challenge_required(await sign(client, slug, {"token": issued["token"]}))
            page = (await client.get(f"/widget/{slug}")).text
            assert page_data(page)["challenge"] is True
            await clock.advance(challenge.AUTO_HOLD - 1)
            assert "challenge" in (await client.get(f"/api/petitions/{slug}/token")).json()
            await clock.advance(challenge.AUTO_HOLD // challenge.HOLD_SLOTS + 1)  # its last slot
            issued = (await client.get(f"/api/petitions/{slug}/token")).json()
            assert "challenge" not in issued  # off again
            assert (await sign(client, slug, {"token": issued["token"]})).status_code == 201
            assert "challenge" in (await client.get(f"/api/petitions/{other}/token")).json()

    asyncio.run(check())


def test_the_no_script_form_is_accepted_once_its_token_has_waited(database_url: str) -> None:
    prepare(database_url)
    slug = SLUGS["on"]

    def token(age: float) -> str:
        issued = FormTokens(
            [live.SECRET], lifetime=7200, min_age=0, clock=lambda: time.time() - age
        )
        return issued.issue(slug, "", "en")

    async def check() -> None:
        async with served(database_url, ManualClock(time.time())) as (client, _):
            html = {"Accept": "text/html"}
            url = f"/api/petitions/{slug}/signatures"
            person = live.new_signer()
            first = token(0)
            early = await client.post(url, data={"token": first, **person}, headers=html)
            assert early.status_code == 400 and "text/html" in early.headers["content-type"]
            assert 0 < int(early.headers["retry-after"]) <= challenge.FORM_WAIT
            assert person["email"] in early.text  # the form back, as typed
            # Its new token keeps when the form was first shown: the wait is not started again.
            renewed = re.search(r'name="token" value="([^"]+)"', early.text)
            assert renewed is not None
            reader = FormTokens([live.SECRET], lifetime=7200, min_age=0)
            claims, original = reader.peek(renewed[1]), reader.peek(first)
            assert claims is not None and original is not None
            assert claims.since == original.since and claims.nonce != original.nonce
            before = (await client.get(f"/api/petitions/{slug}")).json()["signatures"]
            waited = token(challenge.FORM_WAIT + 1)
            late = await client.post(url, data={"token": waited, **person}, headers=html)
            assert late.status_code == 303, late.text  # Post/Redirect/Get: signed
            assert "done=" in late.headers["location"]
            after = (await client.get(f"/api/petitions/{slug}")).json()["signatures"]
            assert after == before + 1
            # The same form's fields as JSON, from a script, need the solution all the same.
            scripted = await sign(client, slug, {"token": token(challenge.FORM_WAIT + 1)})
            assert_challenge_required(scripted)

    asyncio.run(check())


def test_the_solver_is_named_by_the_script_and_never_by_a_document(database_url: str) -> None:
    """The document's first render is near its budget: it carries no link to the solver, which
    widget.js names by the fixed address it is served at, revalidated rather than kept."""
    prepare(database_url)

    async def check() -> None:
        async with served(database_url, ManualClock(time.time())) as (client, _):
            page = (await client.get(f"/widget/{SLUGS['on']}")).text
            assert page_data(page)["challenge"] is True and "challenge.js" not in page
            script = re.search(r'src="(/widget/assets/widget\.[0-9a-f]+\.js)"', page)
            assert script is not None
            assert '"/widget/assets/challenge.js"' in (await client.get(script[1])).text
            solver = await client.get("/widget/assets/challenge.js")
            assert solver.status_code == 200 and "postMessage" in solver.text
            assert solver.headers["cache-control"] == "no-cache" and solver.headers["etag"]
            again = await client.get(
                "/widget/assets/challenge.js", headers={"If-None-Match": solver.headers["etag"]}
            )
            assert again.status_code == 304

    asyncio.run(check())


def test_force_challenge_asks_for_work_unless_the_petition_says_off(database_url: str) -> None:
    """The hook for the aggregate limit per network (`submission.sign(force_challenge=True)`):
    a submission over it must carry a solution, on "auto" whatever the switch says, never on
    "off"; and `Switch.trip` turns a petition's challenge on for everyone."""
    prepare(database_url)

    async def check() -> None:
        async with served(database_url, ManualClock(time.time())) as (client, services):
            tokens = services.tokens
            auto, off = services.registry.get(SLUGS["auto"]), services.registry.get(SLUGS["off"])
            assert auto is not None and off is not None
            fields = {**live.new_signer(), "token": tokens.issue(auto.slug, "", "en")}
            forced = await submission.sign(services, auto, fields, force_challenge=True)
            assert forced.error == "challenge_required" and forced.claims is not None
            fields = {**live.new_signer(), "token": tokens.issue(off.slug, "", "en")}
            assert (await submission.sign(services, off, fields, force_challenge=True)).signed
            assert "challenge" not in (await client.get(f"/api/petitions/{auto.slug}/token")).json()
            services.challenge_switch.trip(auto.id)
            issued = (await client.get(f"/api/petitions/{auto.slug}/token")).json()
            assert set(issued["challenge"]) == FIELDS
            solved = {"token": issued["token"], "challenge_solution": solve(issued["challenge"])}
            assert (await sign(client, auto.slug, solved)).status_code == 201

    asyncio.run(check())


def test_an_expired_tokens_renewal_comes_with_its_challenge(database_url: str) -> None:
    """Main renews an expired token in its refusal, keeping `since`; while a challenge is on the
    renewal carries its puzzle too, so the widget signs with it at once after solving."""
    prepare(database_url)
    slug = SLUGS["on"]
    old = FormTokens([live.SECRET], lifetime=60, min_age=0, clock=lambda: time.time() - 120)
    stale = old.issue(slug, "ngo-a", "en")

    async def check() -> None:
        async with served(database_url, ManualClock(time.time())) as (client, services):
            refused = await sign(client, slug, {"token": stale})
            assert refused.status_code == 400, refused.text
            body = refused.json()
            assert body["error"] == "expired_token" and set(body["challenge"]) == FIELDS
            renewed, first = services.tokens.peek(body["token"]), old.peek(stale)
            assert renewed is not None and first is not None
            assert (renewed.partner, renewed.since) == ("ngo-a", first.since)
            solved = {"token": body["token"], "challenge_solution": solve(body["challenge"])}
            assert (await sign(client, slug, solved)).status_code == 201

    asyncio.run(check())
