"""The signing contract on a live server, on SQLite and PostgreSQL: replays, concurrency,
duplicates, attribution, and every class of bad input."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from server.domain.form_tokens import FormTokens
from server.store.storage import Storage
from tests.support import backends, live, petitions

SLUG = "save-russian-lgbt-network"
SIGN = f"/api/petitions/{SLUG}/signatures"


def token(client: httpx.Client, **params: str) -> str:
    issued: str = client.get(f"/api/petitions/{SLUG}/token", params=params).json()["token"]
    return issued


def count(client: httpx.Client) -> int:
    signatures: int = client.get(f"/api/petitions/{SLUG}").json()["signatures"]
    return signatures


def stored(server: live.LiveServer) -> tuple[int, int]:
    """(the counters' total, a real COUNT(*) of signature rows), read from the database."""

    async def read() -> tuple[int, int]:
        storage = Storage(server.env["DATABASE_URL"])
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            return (await storage.totals()).get(pid, 0), await storage.stored_signatures(pid)
        finally:
            await storage.disconnect()

    return asyncio.run(read())


def test_sign_counts_once_and_answers_duplicates_identically(client: httpx.Client) -> None:
    before = count(client)
    person = live.new_signer()
    first = client.post(SIGN, json={"token": token(client), **person})
    assert first.status_code == 201
    answer = first.json()
    assert answer.pop("withdraw_url").startswith(f"{client.base_url}/withdraw/")
    assert answer == {"status": "signed", "signatures": before + 1}
    # The same person again, other case and spaces, fresh token: same status, same shape.
    again = client.post(
        SIGN,
        json={
            "token": token(client),
            "name": person["name"],
            "email": "  " + person["email"].upper() + " ",
        },
    )
    assert again.status_code == first.status_code
    assert set(again.json()) == set(first.json())
    assert again.json()["status"] == "signed"
    assert count(client) == before + 1


def test_replay_of_the_same_submission_is_idempotent(client: httpx.Client) -> None:
    body = {"token": token(client), **live.new_signer()}
    before = count(client)
    first = client.post(SIGN, json=body)
    replay = client.post(SIGN, json=body)
    assert first.status_code == replay.status_code == 201
    first_answer, replay_answer = first.json(), replay.json()
    first_link, replay_link = first_answer.pop("withdraw_url"), replay_answer.pop("withdraw_url")
    # Each answer says the count published before it, plus one: the replay tells nothing more.
    assert first_answer == {"status": "signed", "signatures": before + 1}
    assert replay_answer == {"status": "signed", "signatures": before + 2}
    assert count(client) == before + 1
    # A retry whose first answer was lost still gets a link that withdraws the signature.
    assert replay_link != first_link
    assert client.post(replay_link.removeprefix(str(client.base_url))).status_code == 200
    assert count(client) == before


def test_used_token_with_another_email_is_refused(client: httpx.Client) -> None:
    used = token(client)
    assert client.post(SIGN, json={"token": used, **live.new_signer()}).status_code == 201
    response = client.post(SIGN, json={"token": used, **live.new_signer()})
    assert response.status_code == 409
    assert response.json()["error"] == "token_used"


def test_fifty_concurrent_submissions_of_one_token(server: live.LiveServer) -> None:
    with httpx.Client(base_url=server.base_url) as c:
        shared = token(c)
        before = stored(server)

    async def submit() -> list[int]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as ac:
            responses = await asyncio.gather(
                *(ac.post(SIGN, json={"token": shared, **live.new_signer()}) for _ in range(50))
            )
        return [r.status_code for r in responses]

    statuses = Counter(asyncio.run(submit()))
    assert statuses == {201: 1, 409: 49}
    after = stored(server)
    assert after == (before[0] + 1, before[1] + 1)


def test_five_hundred_concurrent_signers_are_counted_exactly(server: live.LiveServer) -> None:
    minter = FormTokens([live.SECRET], lifetime=7200, min_age=0)
    before_total, before_rows = stored(server)
    assert before_total == before_rows

    async def sign_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as ac:
            return await asyncio.gather(
                *(
                    ac.post(SIGN, json={"token": minter.issue(SLUG), **live.new_signer("c")})
                    for _ in range(500)
                )
            )

    responses = asyncio.run(sign_all())
    assert Counter(r.status_code for r in responses) == {201: 500}
    total, rows = stored(server)
    assert total == rows == before_total + 500
    assert max(r.json()["signatures"] for r in responses) <= total


def test_honeypot_pretends_and_stores_nothing(
    server: live.LiveServer, client: httpx.Client
) -> None:
    before = stored(server)
    response = client.post(
        SIGN, json={"token": token(client), **live.new_signer(), "website": "http://spam.example"}
    )
    assert response.status_code == 201
    assert response.json()["status"] == "signed"
    assert stored(server) == before


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda good: "garbage", "invalid_token"),
        (lambda good: good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"), "invalid_token"),
        (
            lambda good: FormTokens(["not-our-key"], lifetime=7200, min_age=0).issue(SLUG),
            "invalid_token",
        ),
        (
            lambda good: FormTokens(
                [live.SECRET], lifetime=7200, min_age=0, clock=lambda: 1_000_000_000
            ).issue(SLUG),
            "expired_token",
        ),
        (
            lambda good: FormTokens([live.SECRET], lifetime=7200, min_age=0).issue("another-one"),
            "wrong_petition",
        ),
    ],
    ids=["forged", "tampered", "other-key", "expired", "wrong-petition"],
)
def test_bad_tokens(client: httpx.Client, make_token: Callable[[str], str], code: str) -> None:
    response = client.post(SIGN, json={"token": make_token(token(client)), **live.new_signer()})
    assert response.status_code == 400
    assert response.json()["error"] == code


def test_missing_token(client: httpx.Client) -> None:
    response = client.post(SIGN, json=live.new_signer())
    assert response.status_code == 400 and response.json()["error"] == "invalid_token"


def test_all_field_errors_at_once_in_the_signers_language(client: httpx.Client) -> None:
    response = client.post(
        SIGN,
        json={
            "token": token(client, lang="ru"),
            "name": " ",
            "email": "nope",
            "country": "QQ",
            "lang": "ru",
        },
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"name", "email", "country"}
    assert errors["name"] == "Это поле нужно заполнить."
    assert "name@example.org" in errors["email"]


def test_field_type_errors_are_422_not_500(client: httpx.Client) -> None:
    response = client.post(
        SIGN,
        json={
            "token": token(client),
            "name": ["x"],
            "email": {"a": 1},
            "consent_partner": "perhaps",
        },
    )
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"name", "email", "consent_partner"}


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "invalid_json"),
        (b'{"name": "\xff\xfe"}', "application/json", 400, "invalid_encoding"),
        (
            b"name=%FF%FE&email=a%40b.org",
            "application/x-www-form-urlencoded",
            400,
            "invalid_encoding",
        ),
        (b"[" * 50_000 + b"]" * 50_000, "application/json", 413, "body_too_large"),
        (b"[" * 5_000 + b"]" * 5_000, "application/json", 400, "invalid_json"),
        (b"hello", "text/plain", 415, "unsupported_media_type"),
        (b"hello", "", 415, "unsupported_media_type"),
    ],
    ids=[
        "malformed",
        "not-object",
        "bad-utf8",
        "bad-utf8-form",
        "too-large",
        "deep-nesting",
        "text",
        "no-type",
    ],
)
def test_bad_bodies(
    client: httpx.Client, content: bytes, content_type: str, status: int, code: str
) -> None:
    headers = (
        {"Content-Type": content_type, "Accept": "application/json"}
        if content_type
        else {"Accept": "application/json"}
    )
    response = client.post(SIGN, content=content, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == code


def test_large_chunked_body_is_refused_while_receiving(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(1_000):
            yield b"x" * 1024  # 1 MB in all, without a Content-Length
        yield b'"}'

    response = client.post(SIGN, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_declared_oversize_is_refused_before_reading(server: live.LiveServer) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(
            f"POST {SIGN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000000\r\n\r\n".encode()
        )
        reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413")


def test_unknown_petition(client: httpx.Client) -> None:
    response = client.post("/api/petitions/nope/signatures", json={"token": "x"})
    assert response.status_code == 404


def test_partner_comes_from_the_token_not_the_client(tmp_path: Path, database_url: str) -> None:
    live.prepare(database_url)

    async def add_partners() -> dict[str, int]:
        storage = Storage(database_url)
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            return {
                code: (await storage.add_partner(pid, code, code.title())).id
                for code in ("honest-ngo", "thief-ngo")
            }
        finally:
            await storage.disconnect()

    async def by_partner() -> dict[int | None, int]:
        storage = Storage(database_url)
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            return await storage.partner_totals(pid)
        finally:
            await storage.disconnect()

    ids = asyncio.run(add_partners())
    with live.LiveServer(database_url, tmp_path) as srv, httpx.Client(base_url=srv.base_url) as c:
        body = {
            "token": token(c, partner="honest-ngo"),
            **live.new_signer(),
            "partner": "thief-ngo",
            "partner_id": ids["thief-ngo"],
        }
        assert c.post(SIGN, json=body).status_code == 201
    assert asyncio.run(by_partner()) == {ids["honest-ngo"]: 1}


def test_unknown_partner_code_still_counts(server: live.LiveServer, client: httpx.Client) -> None:
    before = count(client)
    response = client.post(
        SIGN, json={"token": token(client, partner="No Such NGO!"), **live.new_signer()}
    )
    assert response.status_code == 201
    assert response.json()["signatures"] == before + 1


def test_closed_petition_refuses_signatures(tmp_path: Path, database_url: str) -> None:
    import dataclasses

    closed = dataclasses.replace(petitions.example(), status="closed")
    live.prepare(database_url, [closed])
    with live.LiveServer(database_url, tmp_path) as srv, httpx.Client(base_url=srv.base_url) as c:
        response = c.post(SIGN, json={"token": token(c), **live.new_signer()})
        assert response.status_code == 403
        assert response.json()["error"] == "petition_closed"
        assert c.get(f"/api/petitions/{SLUG}").json()["status"] == "closed"


def test_too_fresh_token_and_rate_limits(tmp_path: Path, database_url: str) -> None:
    live.prepare(database_url)
    settings = {"token_min_age": 30, "rate_sign_per_minute": 3, "rate_client_per_minute": 0}
    with (
        live.LiveServer(database_url, tmp_path, **settings) as srv,
        httpx.Client(base_url=srv.base_url) as c,
    ):
        response = c.post(SIGN, json={"token": token(c), **live.new_signer()})
        assert response.status_code == 400
        assert response.json()["error"] == "token_too_fresh"
        assert 1 <= int(response.headers["retry-after"]) <= 30
        old = FormTokens(
            [live.SECRET], lifetime=7200, min_age=0, clock=lambda: __import__("time").time() - 60
        ).issue(SLUG)
        statuses = [
            c.post(SIGN, json={"token": old, **live.new_signer()}).status_code for _ in range(4)
        ]
        assert statuses[:3] != [429, 429, 429]
        assert statuses[3] == 429
        limited = c.post(SIGN, json={"token": old, **live.new_signer()})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"] == "rate_limited"


def test_rotated_keys_on_a_live_server(tmp_path: Path, database_url: str) -> None:
    live.prepare(database_url)
    old = FormTokens(["old-key"], lifetime=7200, min_age=0).issue(SLUG)
    with (
        live.LiveServer(database_url, tmp_path, secret_keys="new-key,old-key") as srv,
        httpx.Client(base_url=srv.base_url) as c,
    ):
        assert c.post(SIGN, json={"token": old, **live.new_signer()}).status_code == 201
        retired = FormTokens(["retired-key"], lifetime=7200, min_age=0).issue(SLUG)
        assert c.post(SIGN, json={"token": retired, **live.new_signer()}).status_code == 400
        assert json.loads(c.get(f"/api/petitions/{SLUG}").text)["signatures"] == 1


def test_counted_at_once_every_201_says_the_published_count_plus_one(
    client: httpx.Client,
) -> None:
    """The count oracle: the answer used to carry the count just after its commit, so a
    victim's earlier signature showed as a count that did not move. Now a first signer, a
    repeat and a bot all hear the count published before their request, plus one."""
    person = live.new_signer()
    answers = []
    for body in (
        {"token": token(client), **person},  # a first signature
        {"token": token(client), **person},  # the same person again
        {"token": token(client), **live.new_signer(), "website": "x"},  # the honeypot
    ):
        published = count(client)
        response = client.post(SIGN, json=body)
        assert response.status_code == 201
        answer = response.json()
        answers.append(answer)
        assert answer["signatures"] == published + 1
        assert set(answer) == {"status", "signatures", "withdraw_url"}
    links = {a["withdraw_url"] for a in answers}
    assert len(links) == 3  # each answer its own link, working or not: they look alike


def test_a_repeats_and_a_bots_withdrawal_links_look_like_a_real_one(client: httpx.Client) -> None:
    """The link in a repeat's (or a bot's) answer used to be stored nowhere, so opening it gave
    404 where a first signer's gave 200: it told whether the address had signed."""
    person = live.new_signer()
    bodies = [
        {"token": token(client), **person},  # a first signature
        {"token": token(client), **person},  # the same person again
        {"token": token(client), **live.new_signer(), "website": "x"},  # the honeypot
    ]
    paths = []
    for body in bodies:
        answer = client.post(SIGN, json=body).json()
        paths.append(answer["withdraw_url"].removeprefix(str(client.base_url)))
    pages = [client.get(path) for path in paths]
    assert [p.status_code for p in pages] == [200, 200, 200]
    assert len({p.text for p in pages}) == 1
    before = count(client)
    # The repeat's and the bot's remove nothing, with the same answer as the real one.
    done = [client.post(path) for path in (paths[1], paths[2], paths[0])]
    assert [d.status_code for d in done] == [200, 200, 200]
    assert len({d.text for d in done}) == 1
    assert count(client) == before - 1  # only the real one withdrew a signature


@pytest.mark.parametrize(
    "engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_a_quarantined_signature_hears_what_a_counted_one_hears(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Counted at once, a signature over the aggregate limit gets the answer of a counted one
    (the published count plus one, its own working withdrawal link) and moves no count."""
    if engine == "sqlite":
        url = backends.sqlite_url(tmp_path)
    else:
        url = request.getfixturevalue("postgres").create()
    live.prepare(url)
    burst = 5  # RATE_NET_PER_MINUTE=1: five minutes' worth
    with (
        live.LiveServer(url, tmp_path, RATE_NET_PER_MINUTE=1) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as client,
    ):
        answers = []
        for _ in range(burst + 2):
            published = count(client)
            response = client.post(SIGN, json={"token": token(client), **live.new_signer()})
            assert response.status_code == 201
            answer = response.json()
            assert answer["signatures"] == published + 1
            assert set(answer) == {"status", "signatures", "withdraw_url"}
            answers.append(answer)
        assert count(client) == burst
        assert stored(server) == (burst, burst + 2)  # counted, and every row kept
        paths = [a["withdraw_url"].removeprefix(str(client.base_url)) for a in answers]
        pages = [client.get(path) for path in (paths[0], paths[-1])]
        assert [p.status_code for p in pages] == [200, 200] and pages[0].text == pages[1].text
        # Withdrawn, the quarantined one takes nothing off the count; the counted one does.
        done = [client.post(path) for path in (paths[-1], paths[0])]
        assert [d.status_code for d in done] == [200, 200] and done[0].text == done[1].text
        assert count(client) == burst - 1
