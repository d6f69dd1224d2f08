"""Confirmation by email over HTTP, on both engines: every accepted submission gets the same
bytes; counts move only when a person confirms from the mail's link; links opened by a mail
scanner change nothing; withdrawal; unknown and expired links. The mails themselves are read
from the outbox here (the SMTP side has tests of its own)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.domain import access_keys
from server.store.signatures import MAILS_PER_SIGNER
from server.store.storage import Storage
from tests.support import backends, live, petitions

SLUG = "save-russian-lgbt-network"
SIGN = f"/api/petitions/{SLUG}/signatures"
# A second petition that offers the name-to-target box.
NAMED = dataclasses.replace(
    petitions.example(confirmation="email"), slug="named-confirm", name_to_target="optional"
)
HTML = {"Accept": "text/html"}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    """A server whose example petition confirms by email. Its mail server is a closed port:
    mails wait in the outbox, where these tests read their links."""
    folder = tmp_path_factory.mktemp("confirm")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    live.prepare(url, [petitions.example(confirmation="email"), NAMED])
    server = live.LiveServer(
        url,
        folder,
        SMTP_URL=f"smtp://127.0.0.1:{live.free_port()}",
        MAIL_FROM="p@example.org",
        # Every log line, at every level, is checked for signer data (tests/conftest.py).
        LOG_LEVEL="debug",
    )
    server.env["BASE_URL"] = server.base_url
    with server as running:
        yield running


@pytest.fixture
def client(server: live.LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


def token(client: httpx.Client) -> str:
    value: str = client.get(f"/api/petitions/{SLUG}/token").json()["token"]
    return value


def count(client: httpx.Client) -> int:
    value: int = client.get(f"/api/petitions/{SLUG}").json()["signatures"]
    return value


def query(server: live.LiveServer, sql: str, values: dict[str, Any] | None = None) -> list[Any]:
    async def read() -> list[Any]:
        storage = Storage(server.env["DATABASE_URL"])
        await storage.connect()
        try:
            rows = await storage.database.fetch_all(sql, values)
            return [tuple(r[i] for i in range(len(r))) for r in rows]
        finally:
            await storage.disconnect()

    return asyncio.run(read())


def change(server: live.LiveServer, sql: str, values: dict[str, Any]) -> None:
    async def write() -> None:
        storage = Storage(server.env["DATABASE_URL"])
        await storage.connect()
        try:
            async with storage.write() as tx:
                await tx.execute(sql, values)
        finally:
            await storage.disconnect()

    asyncio.run(write())


def mails_to(server: live.LiveServer, address: str) -> list[dict[str, Any]]:
    rows = query(server, "SELECT payload FROM outbox WHERE topic = 'mail' ORDER BY id")
    found = [json.loads(r[0]) for r in rows]
    opened = [live.opened(m) for m in found]  # as the mail job opens them
    return [m for m in opened if m["to"].lower() == address.lower()]


def link(server: live.LiveServer, kind: str, value: str) -> str:
    return f"/{kind}/{value}"


def same_answer(response: httpx.Response) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
    """What a response says, but its Date."""
    headers = sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")
    return response.status_code, response.content, tuple(headers)


def test_every_accepted_submission_gets_the_same_bytes(
    server: live.LiveServer, client: httpx.Client
) -> None:
    before = count(client)
    first = live.new_signer()
    answers = [client.post(SIGN, json={"token": token(client), **first})]  # a first signer
    answers.append(client.post(SIGN, json={"token": token(client), **first}))  # still pending
    retry = {"token": token(client), **live.new_signer()}
    answers += [client.post(SIGN, json=retry), client.post(SIGN, json=retry)]  # a retry
    bot = {"token": token(client), **live.new_signer(), "website": "https://spam.example"}
    answers.append(client.post(SIGN, json=bot))  # the honeypot
    flood = live.new_signer()
    answers += [client.post(SIGN, json={"token": token(client), **flood}) for _ in range(5)]
    # Confirmed, then signing again.
    (mail,) = mails_to(server, first["email"])[:1]
    assert client.post(link(server, "confirm", mail["confirm"])).status_code == 200
    answers.append(client.post(SIGN, json={"token": token(client), **first}))
    assert {a.status_code for a in answers} == {202}
    assert answers[0].json() == {"status": "confirmation_sent"}
    assert len({same_answer(a) for a in answers}) == 1
    assert "signatures" not in answers[0].text
    assert count(client) == before + 1  # only the confirmation counted
    assert len(mails_to(server, bot["email"])) == 0
    assert len(mails_to(server, retry["email"])) == 1
    assert len(mails_to(server, flood["email"])) == 3  # at most 3 per address and petition
    assert mails_to(server, first["email"])[-1]["kind"] == "already_signed"


def test_a_mail_scanner_opening_every_link_changes_nothing(
    server: live.LiveServer, client: httpx.Client
) -> None:
    before = count(client)
    signer = live.new_signer()
    assert client.post(SIGN, json={"token": token(client), **signer}).status_code == 202
    (mail,) = mails_to(server, signer["email"])
    for kind in ("confirm", "withdraw"):
        page = client.get(link(server, kind, mail[kind]))
        assert page.status_code == 200
        assert "<script" not in page.text.lower()
        assert 'method="post"' in page.text
        assert "onload" not in page.text.lower() and "http-equiv" not in page.text.lower()
        assert "script-src" not in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
    # The confirmation page says who is signing and what they ticked.
    shown = client.get(link(server, "confirm", mail["confirm"])).text
    assert signer["name"] in shown
    assert count(client) == before
    assert query(server, "SELECT COUNT(*) FROM pending_signatures WHERE email = :e",
                 {"e": signer["email"]}) == [(1,)]  # fmt: skip


def test_counts_move_on_a_confirmation_and_back_on_a_withdrawal(
    server: live.LiveServer, client: httpx.Client
) -> None:
    before = count(client)
    signer = live.new_signer()
    client.post(SIGN, json={"token": token(client), **signer})
    (mail,) = mails_to(server, signer["email"])
    confirmed = client.post(link(server, "confirm", mail["confirm"]))
    assert confirmed.status_code == 200 and "Your signature counts" in confirmed.text
    assert count(client) == before + 1
    again = client.post(link(server, "confirm", mail["confirm"]))
    assert (again.status_code, again.text) == (200, confirmed.text)
    assert count(client) == before + 1
    withdrawn = client.post(link(server, "withdraw", mail["withdraw"]))
    assert withdrawn.status_code == 200 and "withdrawn" in withdrawn.text
    assert count(client) == before
    repeated = client.post(link(server, "withdraw", mail["withdraw"]))
    assert (repeated.status_code, repeated.text) == (200, withdrawn.text)
    assert count(client) == before
    assert query(server, "SELECT COUNT(*) FROM signatures WHERE email = :e",
                 {"e": signer["email"]}) == [(0,)]  # fmt: skip


@pytest.mark.parametrize(
    "path",
    [
        "/confirm/nope",
        "/confirm/" + "A" * 43,
        "/withdraw/" + "b" * 43,
        "/confirm/" + "x" * 44,
        "/withdraw/%00%ff",
    ],
)
def test_unknown_or_malformed_links_get_a_404_page(client: httpx.Client, path: str) -> None:
    before = count(client)
    for method in ("GET", "POST"):
        response = client.request(method, path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "does not work" in response.text
    assert count(client) == before


def test_an_expired_link_gets_a_410_page_that_offers_to_sign_again(
    server: live.LiveServer, client: httpx.Client
) -> None:
    signer = live.new_signer()
    client.post(SIGN, json={"token": token(client), **signer})
    (mail,) = mails_to(server, signer["email"])
    expire = (
        "UPDATE links SET expires_at = 1 WHERE kind = 'confirm' AND ref IN "
        "(SELECT ref FROM pending_signatures WHERE email = :e)"
    )
    change(server, expire, {"e": signer["email"]})
    before = count(client)
    for method in ("GET", "POST"):
        response = client.request(method, link(server, "confirm", mail["confirm"]))
        assert response.status_code == 410
        assert f'href="/widget/{SLUG}"' in response.text
    assert count(client) == before


def test_the_form_without_javascript_answers_every_accepted_submission_alike(
    server: live.LiveServer, client: httpx.Client
) -> None:
    """The contract's cases, without JavaScript: a first signer, a retry of the very same
    submission, a signer still pending, a bot caught by the honeypot, an address past its
    mail quota, and a signer already confirmed all get the same `303` to the check-your-email
    page's own address (the same but for the moment in its mark), which echoes nothing typed."""

    def form_token() -> str:
        value = re.search(r'name="token" value="([^"]+)"', client.get(f"/widget/{SLUG}").text)
        assert value is not None
        return value[1]

    def post(body: dict[str, str]) -> httpx.Response:
        return client.post(SIGN, data=body, headers=HTML, follow_redirects=False)

    answers: list[tuple[httpx.Response, dict[str, str]]] = []
    first = live.new_signer()
    body = {"token": form_token(), **first}
    answers += [(post(body), first), (post(body), first)]  # a first signer, and its retry
    answers.append((post({"token": form_token(), **first}), first))  # still pending
    bot = {**live.new_signer(), "website": "https://spam.example"}
    answers.append((post({"token": form_token(), **bot}), bot))  # the honeypot
    flood = live.new_signer()
    for _ in range(MAILS_PER_SIGNER + 1):  # the last one past the quota: no mail
        answers.append((post({"token": form_token(), **flood}), flood))
    mail = mails_to(server, first["email"])[0]
    assert client.post(link(server, "confirm", mail["confirm"])).status_code == 200
    answers.append((post({"token": form_token(), **first}), first))  # confirmed already

    pages = set()
    for response, typed in answers:
        assert response.status_code == 303
        assert response.text == "" and typed["email"] not in response.headers["location"]
        pages.add(page_but_input(response, typed))
        shown = client.get(response.headers["location"], headers=HTML)
        assert "Check your email" in shown.text and typed["email"] not in shown.text
    assert len(pages) == 1
    # Each case was what it claims to be: the mails queued say so.
    assert mails_to(server, bot["email"]) == []
    assert len(mails_to(server, flood["email"])) == MAILS_PER_SIGNER
    # Its retry sent none; the pending repeat got its own confirmation.
    kinds = [m["kind"] for m in mails_to(server, first["email"])]
    assert kinds == ["confirm", "confirm", "already_signed"]


def page_but_input(
    response: httpx.Response, typed: dict[str, str]
) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    """A no-JS answer without what may differ: the signer's own input, the fresh form token,
    and the headers that follow from them (its length) or from the moment (`Date`)."""
    text = re.sub(r'name="token" value="[^"]+"', "", response.text)
    for value in typed.values():
        text = text.replace(value, "")
    varying = ("date", "content-length")
    headers = sorted(
        (k, re.sub(r"done=[^&]+", "", v) if k.lower() == "location" else v)  # the moment
        for k, v in response.headers.items()
        if k.lower() not in varying
    )
    return response.status_code, text, tuple(headers)


def test_the_dashboard_counts_what_waits_and_never_shows_an_address(
    server: live.LiveServer, client: httpx.Client
) -> None:
    key = access_keys.generate(access_keys.OWNER)

    async def add_key() -> None:
        storage = Storage(server.env["DATABASE_URL"])
        await storage.connect()
        try:
            await storage.add_access_key(key.id, access_keys.OWNER, key.digest, "test")
        finally:
            await storage.disconnect()

    asyncio.run(add_key())
    signer = live.new_signer()
    client.post(SIGN, json={"token": token(client), **signer})
    waiting = query(server, "SELECT COUNT(*) FROM pending_signatures")[0][0]
    page = client.get(f"/admin/petitions/{SLUG}", headers={"Authorization": f"Bearer {key.text}"})
    assert page.status_code == 200
    assert re.search(
        rf'<span class="stat-value">{waiting:,}</span><span class="stat-label">waiting', page.text
    )
    assert "mails to send" in page.text
    assert signer["email"] not in page.text and signer["name"] not in page.text


def test_confirming_a_withdrawn_submission_says_the_link_does_not_work(
    server: live.LiveServer, client: httpx.Client
) -> None:
    """Its POST used to answer "Your signature counts" while its GET said 404."""
    signer = live.new_signer()
    client.post(SIGN, json={"token": token(client), **signer})
    (mail,) = mails_to(server, signer["email"])
    before = count(client)
    assert client.post(link(server, "withdraw", mail["withdraw"])).status_code == 200
    for method in ("GET", "POST"):
        response = client.request(method, link(server, "confirm", mail["confirm"]))
        assert response.status_code == 404
        assert "does not work" in response.text
    assert count(client) == before


def test_the_check_your_email_page_carries_no_count(
    server: live.LiveServer, client: httpx.Client
) -> None:
    def answer() -> str:
        page = client.get(f"/widget/{SLUG}").text
        value = re.search(r'name="token" value="([^"]+)"', page)
        assert value is not None
        signer = live.new_signer()
        posted = client.post(SIGN, data={"token": value[1], **signer}, headers=HTML)
        text = client.get(posted.headers["location"], headers=HTML).text
        text = re.sub(r'name="token" value="[^"]+"', "", text)
        for typed in signer.values():
            text = text.replace(typed, "")
        return text

    before = answer()
    # Someone confirms: the count moves, and the next page must not show it.
    signer = live.new_signer()
    client.post(SIGN, json={"token": token(client), **signer})
    (mail,) = mails_to(server, signer["email"])
    client.post(link(server, "confirm", mail["confirm"]))
    assert answer() == before


def test_the_confirmation_page_says_the_name_will_be_delivered_when_the_box_was_ticked(
    server: live.LiveServer, client: httpx.Client
) -> None:
    sign = f"/api/petitions/{NAMED.slug}/signatures"
    shown = {}
    for ticked in (True, False):
        signer = live.new_signer()
        fresh = client.get(f"/api/petitions/{NAMED.slug}/token").json()["token"]
        body = {"token": fresh, **signer, "consent_name_to_target": ticked}
        assert client.post(sign, json=body).status_code == 202
        (mail,) = mails_to(server, signer["email"])
        shown[ticked] = client.get(link(server, "confirm", mail["confirm"])).text
    said = "Your name will be on the list delivered to the Russian government."
    assert said in shown[True] and said not in shown[False]


# --- Quarantine: the same bytes, the same mail ----------------------------------------------------

NET_BURST = 5  # RATE_NET_PER_MINUTE=1 below: a burst of five minutes' worth, then quarantine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def quarantining(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    """A server like `server` whose aggregate limit quarantines the sixth submission on."""
    folder = tmp_path_factory.mktemp("quarantine")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    live.prepare(url, [petitions.example(confirmation="email")])
    server = live.LiveServer(
        url, folder, SMTP_URL=f"smtp://127.0.0.1:{live.free_port()}", MAIL_FROM="p@example.org",
        RATE_NET_PER_MINUTE=1,
    )  # fmt: skip
    server.env["BASE_URL"] = server.base_url
    with server as running:
        yield running


def states(server: live.LiveServer, table: str) -> dict[str, int]:
    rows = query(server, f"SELECT status, COUNT(*) FROM {table} GROUP BY status")
    return {r[0]: int(r[1]) for r in rows}


def test_a_quarantined_submission_gets_the_same_bytes_and_the_same_mail(
    quarantining: live.LiveServer,
) -> None:
    """Over the aggregate limit, a submission is a decoy through the writer like the
    honeypot's, but kept: the same 202 bytes, the same mail, the same confirmation page, its
    confirmation recorded, and no count."""
    server = quarantining
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        before = count(client)
        signers = [live.new_signer() for _ in range(NET_BURST + 2)]
        answers = [client.post(SIGN, json={"token": token(client), **s}) for s in signers]
        assert {a.status_code for a in answers} == {202}
        assert len({same_answer(a) for a in answers}) == 1
        assert states(server, "pending_signatures") == {"counted": NET_BURST, "quarantined": 2}
        mails = [mails_to(server, s["email"]) for s in signers]
        assert {(len(m), m[0]["kind"], tuple(sorted(m[0]))) for m in mails} == {
            (1, "confirm", tuple(sorted(mails[0][0])))
        }
        # One counted and one quarantined confirm alike; only the first counts.
        pages = []
        for i in (0, NET_BURST):
            page = client.post(link(server, "confirm", mails[i][0]["confirm"]))
            pages.append((page.status_code, page.text.replace(signers[i]["name"], "")))
        assert pages[0] == pages[1] and pages[0][0] == 200
        assert count(client) == before + 1
        assert states(server, "signatures") == {"counted": 1, "quarantined": 1}


def test_the_form_without_javascript_answers_a_quarantined_submission_alike(
    quarantining: live.LiveServer,
) -> None:
    server = quarantining
    with httpx.Client(base_url=server.base_url, timeout=30) as client:

        def form_token() -> str:
            value = re.search(r'name="token" value="([^"]+)"', client.get(f"/widget/{SLUG}").text)
            assert value is not None
            return value[1]

        pages = set()
        for _ in range(NET_BURST + 2):
            typed = live.new_signer()
            response = client.post(
                SIGN, data={"token": form_token(), **typed}, headers=HTML, follow_redirects=False
            )
            assert response.status_code == 303  # Post/Redirect/Get, to one address for all
            pages.add(page_but_input(response, typed))
        assert len(pages) == 1
        assert states(server, "pending_signatures") == {"counted": NET_BURST, "quarantined": 2}
