"""Confirmation by email over HTTP with its mails over real SMTP, on both engines: a server
(`python -m server serve`) whose mails go to an aiosmtpd server in this process
(`tests/support/catcher.py`), and the links followed from the mails as their reader would.

- Squatting: someone signs with another person's address and a name of their own; the
  address's owner signs too. Both mails reach the owner's mailbox; the owner confirms their
  own, and only their name and choices count: the squatter's submission is gone, and its
  links lead to the signature that counts (a repeat of a confirmation shows the same success).
- The daily budget: an address gets at most `MAILS_PER_DAY` mails a day over every petition;
  past it the answer is the same bytes and no mail goes out.

`tests/web/test_confirmation.py` reads mails from the outbox instead, with no mail server.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import httpx
import pytest

from server.store.signatures import DAY, MAILS_PER_DAY, MAILS_PER_SIGNER
from tests.reliability.test_mail_delivery import mail_server, outbox, wait_until
from tests.support import backends, live, petitions
from tests.support.catcher import Catcher, Delivery
from tests.web.test_confirmation import count, query, same_answer, token

SLUG = "save-russian-lgbt-network"
# Petitions enough that one address reaches its daily budget before any petition's quota.
OTHERS = ("second-petition", "third-petition")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def mailed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[live.LiveServer, Catcher]]:
    """A server whose petitions confirm by email, and the mail server its mails reach."""
    folder = tmp_path_factory.mktemp("mail-flow")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    example = petitions.example(confirmation="email")
    live.prepare(url, [example, *(dataclasses.replace(example, slug=s) for s in OTHERS)])
    catcher = Catcher().open()
    try:
        # Every log line, at every level, is checked for signer data (tests/conftest.py).
        with mail_server(url, folder, catcher.port, LOG_LEVEL="debug") as server:
            yield server, catcher
    finally:
        catcher.stop_thread()


def mails_to(catcher: Catcher, address: str, at_least: int) -> list[Delivery]:
    """The mails the catcher has for `address`, once there are at least `at_least`."""

    def found() -> list[Delivery]:
        return [d for d in catcher.deliveries() if d.recipients == (address,)]

    wait_until(f"{at_least} mails", lambda: len(found()) >= at_least, 30)
    return found()


def confirm_path(server: live.LiveServer, mail: Delivery) -> str:
    (url,) = [u for u in mail.mail.links if u.startswith(f"{server.base_url}/confirm/")]
    return url.removeprefix(server.base_url)


def test_the_owner_of_an_address_confirms_and_a_squatters_submission_is_gone(
    mailed: tuple[live.LiveServer, Catcher],
) -> None:
    server, catcher = mailed
    owner = live.new_signer("owner")
    squatter = {"name": live.new_signer("squat")["name"], "email": owner["email"]}
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        before = count(client)
        squatted = {"token": token(client), **squatter, "consent_organiser": True}
        assert client.post(f"/api/petitions/{SLUG}/signatures", json=squatted).status_code == 202
        signed = {"token": token(client), **owner}
        assert client.post(f"/api/petitions/{SLUG}/signatures", json=signed).status_code == 202
        # Two mails, both to the owner's mailbox: the squatter cannot read either.
        mails = mails_to(catcher, owner["email"], 2)
        assert len(mails) == 2 and {m.mail.to for m in mails} == {owner["email"]}
        # The owner tells their own from the page each link opens: it shows the name.
        paths = [confirm_path(server, m) for m in mails]
        shown = {path: client.get(path).text for path in paths}
        (own,) = [p for p in paths if owner["name"] in shown[p]]
        (other,) = [p for p in paths if squatter["name"] in shown[p]]
        assert count(client) == before  # opening the links confirmed nothing
        refs = dict(query(server, "SELECT name, ref FROM pending_signatures WHERE email = :e",
                          {"e": owner["email"]}))  # fmt: skip
        assert set(refs) == {owner["name"], squatter["name"]}

        confirmed = client.post(own)
        assert confirmed.status_code == 200 and "Your signature counts" in confirmed.text
        assert count(client) == before + 1
        # The owner's name and choices count; of the squatter's submission nothing is left,
        # and no link leads to it any more.
        counted = query(server, "SELECT name, consent_organiser FROM signatures WHERE email = :e",
                        {"e": owner["email"]})  # fmt: skip
        assert counted == [(owner["name"], 0)]
        assert query(server, "SELECT COUNT(*) FROM pending_signatures WHERE email = :e",
                     {"e": owner["email"]}) == [(0,)]  # fmt: skip
        assert query(server, "SELECT COUNT(*) FROM links WHERE ref = :r",
                     {"r": refs[squatter["name"]]}) == [(0,)]  # fmt: skip
        # The squatter's link, in the owner's mailbox, now shows the owner's success (a
        # repeat of a confirmation), never the squatter's name, and changes nothing.
        for method in ("GET", "POST"):
            page = client.request(method, other)
            assert (page.status_code, page.text) == (200, confirmed.text), method
            assert squatter["name"] not in page.text
        assert count(client) == before + 1


def test_the_sixth_mail_of_a_day_to_one_address_is_not_sent(
    mailed: tuple[live.LiveServer, Catcher],
) -> None:
    """Two submissions to each of three petitions: each petition's quota (3) allows them all,
    the day's budget of the address (5) stops the sixth mail. The answer stays the same."""
    server, catcher = mailed
    slugs = [slug for slug in (SLUG, *OTHERS) for _ in range(2)]
    # The premise: one more than the budget, and within every petition's quota.
    assert len(slugs) == MAILS_PER_DAY + 1 and slugs.count(SLUG) <= MAILS_PER_SIGNER
    with httpx.Client(base_url=server.base_url, timeout=30) as client:

        def sign(slug: str, person: dict[str, str]) -> httpx.Response:
            issued = client.get(f"/api/petitions/{slug}/token").json()["token"]
            return client.post(
                f"/api/petitions/{slug}/signatures", json={"token": issued, **person}
            )

        for _ in range(2):  # once more if midnight (UTC) fell between the first and the sixth
            day = int(time.time()) // DAY
            person = live.new_signer("budget")
            answers = [sign(slug, person) for slug in slugs]
            if int(time.time()) // DAY == day:
                break
        control = live.new_signer("control")  # another address, right after: mailed as usual
        answers.append(sign(SLUG, control))
    assert {a.status_code for a in answers} == {202}
    assert len({same_answer(a) for a in answers}) == 1
    mails_to(catcher, control["email"], 1)
    # Once the outbox is empty every mail queued has reached the catcher: a sixth would be
    # here by now, had one been queued.
    wait_until("every mail sent", lambda: not outbox(server.env["DATABASE_URL"]), 30)
    sent = len(mails_to(catcher, person["email"], MAILS_PER_DAY))
    assert sent == MAILS_PER_DAY
