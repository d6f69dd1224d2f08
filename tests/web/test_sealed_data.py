"""Sealed signer data over HTTP, on both engines (issue 14): the seized-disk test.

A live server with `SEALING_PUBLIC_KEY` takes signers with distinctive names, emails and
comments through the whole confirmation flow (real SMTP: the catcher), some confirmed, some left
pending, one withdrawn, until its outbox has drained. Then every byte the database left on
disk is read, while the server still runs (its WAL as a seizure would find it) and after it
stopped: the SQLite files (db, -wal, -shm), or a `pg_dump` of the PostgreSQL database and
its files.
No name, email or comment may be there, nor an unkeyed digest of an address (SHA-256, SHA-1,
MD5, as 8-byte prefixes, in hex, base64 or raw). Then the export, opened with the secret key
by the CLI, holds every confirmed signer exactly once, and the partner's copy only its
consenting signers.

On PostgreSQL the database's own files under the data directory are read too (after a
CHECKPOINT): deleted rows stay there as dead tuples until a vacuum reuses their space, which is
why an outbox row keeps its address encrypted under the hash key, never in clear.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import dataclasses
import hashlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.domain import access_keys, sealing
from server.domain.form_tokens import FormTokens
from server.store.storage import Storage
from tests.support import backends, live, petitions
from tests.support.catcher import Catcher
from tests.web.test_dashboard_charts import table
from tests.web.test_spreadsheet import cells

SLUG = "save-russian-lgbt-network"
SIGN = f"/api/petitions/{SLUG}/signatures"
PARTNER = "allies"
SIGNERS = 12
CONFIRMED = 8  # of them; the others stay pending
MAIL_FROM = "petitions@example.org"


@dataclasses.dataclass
class Seized:
    url: str
    folder: Path
    secret_file: Path
    partner_secret_file: Path
    people: list[dict[str, str]]
    confirmed: list[dict[str, str]]  # counted at the end (the withdrawn one taken out)
    withdrawn: dict[str, str]
    public_key: str
    while_running: bytes  # the disk read while the server still ran (a seizure does not wait)
    tokens: list[str]  # of the links in the mails: each opens its signer's name box


def _unkeyed_digests(email: str) -> list[bytes]:
    """Every form of an 8-byte prefix of an unkeyed digest of `email` a thief could match."""
    forms: list[bytes] = []
    for name in ("sha256", "sha1", "md5"):
        raw = hashlib.new(name, email.encode()).digest()[:8]
        forms += [raw, raw.hex().encode(), base64.b64encode(raw)[:10]]
        full = hashlib.new(name, email.encode()).digest()
        forms += [base64.b64encode(full)[:10], base64.urlsafe_b64encode(full)[:10]]
    return forms


def _query(url: str, sql: str) -> list[Any]:
    async def read() -> list[Any]:
        storage = Storage(url)
        await storage.connect()
        try:
            return [
                tuple(r[i] for i in range(len(r))) for r in await storage.database.fetch_all(sql)
            ]
        finally:
            await storage.disconnect()

    return asyncio.run(read())


def _add_partner(url: str, public_key: str | None, code: str = PARTNER) -> None:
    async def add() -> None:
        storage = Storage(url)
        await storage.connect()
        try:
            petition_id = await storage.petition_id(SLUG)
            assert petition_id is not None
            await storage.add_partner(petition_id, code, code.title(), public_key)
        finally:
            await storage.disconnect()

    asyncio.run(add())


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def seized(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seized]:
    folder = tmp_path_factory.mktemp("seized")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    public, secret = sealing.new_key_pair()
    partner_public, partner_secret = sealing.new_key_pair()
    secret_file, partner_secret_file = folder / "owner.secret", folder / "partner.secret"
    secret_file.write_text(secret)
    partner_secret_file.write_text(partner_secret)
    petition = dataclasses.replace(petitions.example(confirmation="email"), comment="optional")
    live.prepare(url, [petition])
    _add_partner(url, partner_public)
    catcher = Catcher().open()
    server = live.LiveServer(
        url, folder, SMTP_URL=catcher.url, MAIL_FROM=MAIL_FROM, SEALING_PUBLIC_KEY=public,
        LOG_LEVEL="debug",
    )  # fmt: skip
    server.env["BASE_URL"] = server.base_url
    tokens = FormTokens([live.SECRET], lifetime=7200, min_age=0)
    people = []
    try:
        with server, httpx.Client(base_url=server.base_url, timeout=30) as client:
            for i in range(SIGNERS):
                person = live.new_signer("S")
                person["comment"] = f"Seized comment Qx{person['email'].split('@')[0]}"
                # Through the partner, every other signer; of those, one in two ticks its box.
                partner = PARTNER if i % 2 else ""
                consent = bool(partner) and i % 4 == 1
                body = {"token": tokens.issue(SLUG, partner), **person, "consent_partner": consent}
                answer = client.post(SIGN, json=body)
                assert answer.status_code == 202, answer.text
                people.append({**person, "partner": partner, "consent": "yes" if consent else ""})
            mails = {m.mail.to: m.mail for m in catcher.wait_for(SIGNERS, 60)}
            confirmed = people[:CONFIRMED]
            for person in confirmed:
                links = mails[person["email"]].links
                confirm = next(link for link in links if "/confirm/" in link)
                assert client.post(confirm.removeprefix(server.base_url)).status_code == 200
            withdrawn = confirmed[0]
            withdraw = next(
                link for link in mails[withdrawn["email"]].links if "/withdraw/" in link
            )
            assert client.post(withdraw.removeprefix(server.base_url)).status_code == 200
            # The last mails' rows go just after their send: wait for the outbox to drain.
            waiting = "SELECT COUNT(*) FROM outbox WHERE failed_at IS NULL"
            deadline = time.monotonic() + 30
            while _query(url, waiting) != [(0,)]:
                assert time.monotonic() < deadline, "the outbox did not drain"
                time.sleep(0.1)
            # A server seized running, not stopped cleanly: the SQLite WAL as it is then.
            while_running = _disk_bytes(url)
            link_tokens = [
                link.rstrip("/").rpartition("/")[2]
                for mail in mails.values()
                for link in mail.links
                if "/confirm/" in link or "/withdraw/" in link
            ]
    finally:
        catcher.stop_thread()
    yield Seized(
        url, folder, secret_file, partner_secret_file, people, confirmed[1:], withdrawn, public,
        while_running, link_tokens,
    )  # fmt: skip


def _disk_bytes(url: str) -> bytes:
    if url.startswith("sqlite"):
        db = Path(url.removeprefix("sqlite:///"))
        files = [Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    dump = shutil.which("pg_dump")
    assert dump is not None, "pg_dump is needed (postgresql-client)"
    dumped = subprocess.run(
        [dump, "--no-owner", url], check=True, capture_output=True, timeout=60
    ).stdout
    return dumped + _postgres_files(url)


def _postgres_files(url: str) -> bytes:
    """Every file of the database under the server's data directory, after a CHECKPOINT has
    written what was in memory: dead rows (deleted outbox mails, confirmed pending ones) and
    free space included, which a dump leaves out.

    A limit on PostgreSQL, stated here as the issue asks and in docs/privacy.md: the server's
    write-ahead log (`pg_wal`) is shared by every database of the server and is not read. It
    holds recent outbox rows as they were written (encrypted under EMAIL_HASH_KEY: with the
    key, they open) until the server recycles its segments; WAL archives, replicas and backups
    keep them longer."""

    async def where() -> tuple[str, int]:
        storage = Storage(url)
        await storage.connect()
        try:
            # The whole cluster's dirty pages: on a busy machine longer than the pool's
            # statement timeout, hence the raw connection's own.
            async with storage.database.connection() as conn:
                await conn.raw_connection.execute("CHECKPOINT", timeout=120)
            folder = await storage.database.fetch_val("SHOW data_directory")
            oid = await storage.database.fetch_val(
                "SELECT oid FROM pg_database WHERE datname = current_database()"
            )
            return str(folder), int(oid)
        finally:
            await storage.disconnect()

    folder, oid = asyncio.run(where())
    files = sorted(p for p in (Path(folder) / "base" / str(oid)).iterdir() if p.is_file())
    assert len(files) > 20  # the database's tables and indexes, readable here
    return b"".join(f.read_bytes() for f in files)


@pytest.mark.parametrize("when", ["running", "stopped"])
def test_a_seized_disk_names_no_signer(seized: Seized, when: str) -> None:
    disk = seized.while_running if when == "running" else _disk_bytes(seized.url)
    assert len(disk) > 10_000  # the database, not nothing
    lowered = disk.lower()
    for person in seized.people:
        email = person["email"].lower()
        for secret in (person["name"], person["email"], person["comment"]):
            assert secret.lower().encode() not in lowered, "signer data on the disk"
        assert email.split("@")[0].encode() not in lowered, "an address's local part on the disk"
        for digest in _unkeyed_digests(email):
            assert digest not in disk, "an unkeyed digest of an address on the disk"
    # A link's token opens its signer's name box (and confirms or withdraws): the outbox kept
    # the tokens, with the address, encrypted until their mail went.
    assert len(seized.tokens) >= SIGNERS * 2
    for token in seized.tokens:
        assert token.encode() not in disk, "a link's token on the disk"


def _export(seized: Seized, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "server", "export", SLUG, "--database-url", seized.url,
         "--format", "json", *args],
        check=False, capture_output=True, text=True, timeout=60, cwd=seized.folder,
        env={**os.environ, "EMAIL_HASH_KEY": live.EMAIL_HASH_KEY},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_export_opened_with_the_secret_key_holds_every_confirmed_signer_once(
    seized: Seized,
) -> None:
    rows = json.loads(_export(seized, "--secret-key", str(seized.secret_file)))
    emails = sorted(r["email"] for r in rows)
    assert emails == sorted(p["email"] for p in seized.confirmed)
    by_email = {r["email"]: r for r in rows}
    for person in seized.confirmed:
        row = by_email[person["email"]]
        assert (row["name"], row["comment"]) == (person["name"], person["comment"])
        assert row["partner_code"] == (person["partner"] or None)


def test_the_partner_copy_holds_only_its_consenting_signers(seized: Seized) -> None:
    theirs = sorted(p["email"] for p in seized.confirmed if p["partner"] and p["consent"])
    # The test signs some through the partner, with and without its box ticked.
    assert theirs and any(p["partner"] and not p["consent"] for p in seized.confirmed)
    for key in (seized.partner_secret_file, seized.secret_file):  # theirs, or the owner's
        rows = json.loads(_export(seized, "--secret-key", str(key), "--partner", PARTNER))
        assert sorted(r["email"] for r in rows) == theirs
        assert all("comment" not in r for r in rows)


def test_the_wrong_key_opens_nothing(seized: Seized, tmp_path: Path) -> None:
    _, stranger = sealing.new_key_pair()
    key = tmp_path / "stranger.secret"
    key.write_text(stranger)
    result = subprocess.run(
        [sys.executable, "-m", "server", "export", SLUG, "--database-url", seized.url,
         "--secret-key", str(key)],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "EMAIL_HASH_KEY": live.EMAIL_HASH_KEY},
    )  # fmt: skip
    assert result.returncode == 1
    assert "does not open" in result.stderr
    assert not any(p["email"] in result.stdout + result.stderr for p in seized.people)


def _sealed_file(seized: Seized) -> bytes:
    """The owner's `export.sealed`, made from the database as the dashboard makes it."""
    from server.domain import export

    async def made() -> bytes:
        storage = Storage(seized.url)
        await storage.connect()
        try:
            petition_id = await storage.petition_id(SLUG)
            assert petition_id is not None
            header = {"petition": SLUG, "partner": None, "columns": list(export.OWNER_COLUMNS)}
            rows = storage.export_rows(petition_id)
            return b"".join([chunk async for chunk in export.sealed_chunks(rows, header)])
        finally:
            await storage.disconnect()

    return asyncio.run(made())


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("bom", [True, False])
def test_bom_starts_the_opened_csv_only_when_asked(
    seized: Seized, tmp_path: Path, bom: bool
) -> None:
    """`--bom` (for Excel) on both offline commands: `export` to stdout, `export-open` to a
    file; the CSV after it is the same, with every confirmed signer."""
    flag = ["--bom"] if bom else []
    sealed = tmp_path / "export.sealed"
    sealed.write_bytes(_sealed_file(seized))
    out = tmp_path / "opened.csv"
    runs = {
        "export": ["export", SLUG, "--database-url", seized.url],
        "export-open": ["export-open", str(sealed), "--out", str(out)],
    }
    for command, args in runs.items():
        done = subprocess.run(
            [sys.executable, "-m", "server", *args, "--secret-key", str(seized.secret_file),
             *flag],
            check=False, capture_output=True, timeout=60, cwd=tmp_path,
            env={**os.environ, "EMAIL_HASH_KEY": live.EMAIL_HASH_KEY},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        data = out.read_bytes() if command == "export-open" else done.stdout
        assert data.startswith(BOM) == bom, command
        text = data.decode("utf-8").removeprefix("\ufeff")
        assert text.startswith("id,"), command  # one mark at most, then the header
        rows = list(csv.DictReader(io.StringIO(text)))
        assert sorted(r["email"] for r in rows) == sorted(p["email"] for p in seized.confirmed)


def test_the_sealed_export_file_opens_offline(seized: Seized, tmp_path: Path) -> None:
    """The dashboard's `export.sealed`, made here from the database as the dashboard makes it,
    opened by `export-open` with no database at all."""
    data = _sealed_file(seized)
    assert not any(p["email"].encode() in data for p in seized.people)
    path = tmp_path / "export.sealed"
    path.write_bytes(data)
    out = tmp_path / "opened.csv"
    result = subprocess.run(
        [sys.executable, "-m", "server", "export-open", str(path), "--secret-key",
         str(seized.secret_file), "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted(r["email"] for r in rows) == sorted(p["email"] for p in seized.confirmed)
    assert not list(tmp_path.glob("*.db")), "export-open created a database"
    book = tmp_path / "opened.xlsx"
    as_xlsx = subprocess.run(
        [sys.executable, "-m", "server", "export-open", str(path), "--secret-key",
         str(seized.secret_file), "--format", "xlsx", "--out", str(book)],
        check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert as_xlsx.returncode == 0, as_xlsx.stderr
    assert oct(book.stat().st_mode & 0o777) == "0o600"
    sheet = cells(book.read_bytes())
    emails = sheet[0].index("email")
    assert sorted(r[emails] for r in sheet[1:]) == sorted(p["email"] for p in seized.confirmed)


def test_boxes_open_with_plain_pynacl(seized: Seized) -> None:
    """Interoperability: a box the server made opens with PyNaCl's SealedBox, no code of ours."""
    import nacl.public

    (box,) = _query(seized.url, "SELECT sealed FROM signatures WHERE sealed IS NOT NULL LIMIT 1")
    secret = nacl.public.PrivateKey(base64.b64decode(seized.secret_file.read_text()))
    record = json.loads(nacl.public.SealedBox(secret).decrypt(base64.b64decode(box[0])))
    assert record["email"] in {p["email"] for p in seized.people}
    assert re.fullmatch(r"\d{10}", str(record["signed_at"]))


def test_a_sealed_server_keeps_its_signatures_times_to_the_hour(
    database_url: str, tmp_path: Path
) -> None:
    """What a live sealed server writes in clear of when someone signed: the hour, never the
    second, signed at once or confirmed by email (the exact time is only in the box). On both
    engines; the mail server refuses every connection, so the mail waits in the outbox, where
    its confirmation link is read (as the mail job would open it)."""
    by_mail = "confirmed-by-mail"
    direct = petitions.example()
    confirmed = dataclasses.replace(petitions.example(confirmation="email"), slug=by_mail)
    live.prepare(database_url, [direct, confirmed])
    public, _ = sealing.new_key_pair()
    server = live.LiveServer(
        database_url, tmp_path, SEALING_PUBLIC_KEY=public, MAIL_FROM=MAIL_FROM,
        SMTP_URL=f"smtp://127.0.0.1:{live.free_port()}",
    )  # fmt: skip
    server.env["BASE_URL"] = server.base_url
    tokens = FormTokens([live.SECRET], lifetime=7200, min_age=0)
    with server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        before = int(time.time())
        for slug, status in ((SLUG, 201), (by_mail, 202)):
            body = {"token": tokens.issue(slug, ""), **live.new_signer("H")}
            answer = client.post(f"/api/petitions/{slug}/signatures", json=body)
            assert answer.status_code == status, answer.text
        signed = int(time.time())
        (waiting,) = _query(database_url, "SELECT created_at FROM pending_signatures")
        (mail,) = _query(database_url, "SELECT payload FROM outbox WHERE topic = 'mail'")
        confirm = live.opened(json.loads(mail[0]))["confirm"]
        assert client.post(f"/confirm/{confirm}").status_code == 200
        after = int(time.time())
    hours = set(range(sealing.hour(before), after + 1, 3600))  # the hours it took
    assert waiting[0] in hours and waiting[0] % 3600 == 0
    rows = _query(
        database_url,
        "SELECT p.slug, s.created_at, s.signed_at FROM signatures s "
        "JOIN petitions p ON p.id = s.petition_id ORDER BY p.slug",
    )
    assert [r[0] for r in rows] == sorted([SLUG, by_mail])
    for slug, created_at, signed_at in rows:
        assert created_at in hours and created_at % 3600 == 0, slug
        if slug == by_mail:
            # Confirmed: counted from the hour of its confirmation, sent in the hour it was.
            assert signed_at == waiting[0]
            assert sealing.hour(signed) <= created_at
        else:
            assert signed_at in (None, created_at)


def test_signers_from_before_a_partners_key_get_no_partner_copy(
    database_url: str, tmp_path: Path
) -> None:
    """A partner added without a key, a signer who ticks its box, then
    `partners set-sealing-key`, then a second such signer: only the second has a copy for the
    partner, so the partner's key opens only the second, from the database (`export
    --partner`) as from its page's sealed download; the owner's key still opens both. Both
    signers go through the live server's decision (the server restarted to read the key)."""
    live.prepare(database_url)
    public, secret = sealing.new_key_pair()
    partner_public, partner_secret = sealing.new_key_pair()
    keys = {"owner": tmp_path / "owner.secret", "partner": tmp_path / "partner.secret"}
    keys["owner"].write_text(secret)
    keys["partner"].write_text(partner_secret)

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "server", *args, "--database-url", database_url],
            check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path,
            env={**os.environ, "EMAIL_HASH_KEY": live.EMAIL_HASH_KEY},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    _add_partner(database_url, None)  # no key yet
    tokens = FormTokens([live.SECRET], lifetime=7200, min_age=0)
    early, late = live.new_signer("E"), live.new_signer("L")

    def server() -> live.LiveServer:
        return live.LiveServer(database_url, tmp_path, SEALING_PUBLIC_KEY=public)

    def sign(client: httpx.Client, person: dict[str, str]) -> None:
        body = {"token": tokens.issue(SLUG, PARTNER), **person, "consent_partner": True}
        answer = client.post(SIGN, json=body)
        assert answer.status_code == 201, answer.text

    with server() as first, httpx.Client(base_url=first.base_url, timeout=30) as client:
        sign(client, early)
    command("partners", "set-sealing-key", SLUG, PARTNER, partner_public)
    owner, _ = _keys(database_url)
    with server() as second, httpx.Client(base_url=second.base_url, timeout=30) as client:
        sign(client, late)
        # The partner's page hands out a download its key opens: the second signer only.
        assert client.post("/admin/login", data={"key": owner}).status_code == 303
        sealed = client.get(f"/admin/petitions/{SLUG}/partners/{PARTNER}/export.sealed")
        assert sealed.status_code == 200
    # Both ticked the box, and both count for the partner; one copy only.
    stored = _query(
        database_url,
        "SELECT consent_partner, partner_sealed IS NOT NULL FROM signatures ORDER BY id",
    )
    assert [tuple(r) for r in stored] == [(1, False), (1, True)]

    def emails(key: str) -> list[str]:
        done = command("export", SLUG, "--partner", PARTNER, "--secret-key", str(keys[key]),
                       "--format", "json")  # fmt: skip
        return sorted(row["email"] for row in json.loads(done.stdout))

    assert emails("partner") == [late["email"]]
    assert emails("owner") == sorted([early["email"], late["email"]])
    download = tmp_path / "partner.sealed"
    download.write_bytes(sealed.content)
    opened = subprocess.run(
        [sys.executable, "-m", "server", "export-open", str(download), "--secret-key",
         str(keys["partner"]), "--format", "json"],
        check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert [row["email"] for row in json.loads(opened.stdout)] == [late["email"]]


def _keys(url: str) -> tuple[str, str]:
    """An owner's and the partner's dashboard keys, made in the database."""

    async def make() -> tuple[str, str]:
        storage = Storage(url)
        await storage.connect()
        try:
            petition_id = await storage.petition_id(SLUG)
            partner = await storage.partner(petition_id or 0, PARTNER)
            assert petition_id is not None and partner is not None
            texts = []
            for role, scope in (
                (access_keys.OWNER, {}),
                (access_keys.PARTNER, {"petition_id": petition_id, "partner_id": partner.id}),
            ):
                key = access_keys.generate(role)
                await storage.add_access_key(key.id, role, key.digest, "test", **scope)
                texts.append(key.text)
            return texts[0], texts[1]
        finally:
            await storage.disconnect()

    return asyncio.run(make())


def _text(markup: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def _shows_the_figures(seized: Seized, page: str, *, partner_page: bool) -> None:
    """With no names to show, a sealed page still shows what the clear columns count: the
    count, the charts, and how many of the partner's signers consented, and says why no name
    is there. Figures of the fixture: `seized.confirmed` counted (the withdrawn one out), of
    which those through the partner, and of those the ones who ticked its box."""
    through = [p for p in seized.confirmed if p["partner"]]
    consenting = [p for p in through if p["consent"]]
    assert len(consenting) < len(through) < len(seized.confirmed)  # three different figures
    count = len(through) if partner_page else len(seized.confirmed)
    stat = re.search(r'<span class="stat-value">([^<]+)</span>', page)
    assert stat is not None and stat[1] == str(count)
    # The charts, from the hours kept in clear: every counted signature is in them.
    days = table(page, "per-day")
    assert sum(int(n) for n in days[1::2]) == count
    hours = table(page, "per-hour")
    assert sum(int(n) for n in hours[1::2]) == count
    assert table(page, "cumulative")[-1] == str(count)
    shown = _text(page)
    if partner_page:
        assert (
            f"{len(consenting)} of your {len(through)} signers ticked the box to hear from "
            f"{PARTNER.title()}."
        ) in shown
        assert f"of the petition's {len(seized.confirmed)} signatures" in shown
        assert "this server cannot read names or addresses, so it shows none" in shown
        assert "sealed for your own key" in shown
    else:
        row = page.split(f'/partners/{PARTNER}">', 1)[1].split("</tr>")[0]
        cells = re.findall(r'<td class="num">([^<]+)</td>', row)
        assert (cells[0], cells[-1]) == (str(len(through)), str(len(consenting)))
        assert "stored only in boxes that this server cannot open" in shown


def test_the_dashboard_shows_no_names_and_hands_out_only_sealed_exports(
    seized: Seized, tmp_path: Path
) -> None:
    owner, partner = _keys(seized.url)
    _add_partner(seized.url, None, "keyless")  # a partner without a key of its own
    server = live.LiveServer(
        seized.url, tmp_path, SEALING_PUBLIC_KEY=seized.public_key,
        SMTP_URL=f"smtp://127.0.0.1:{live.free_port()}", MAIL_FROM=MAIL_FROM,
    )  # fmt: skip
    server.env["BASE_URL"] = server.base_url
    admin = f"/admin/petitions/{SLUG}"
    with server:
        for key, pages in ((owner, (admin, f"{admin}/partners/{PARTNER}")),
                           (partner, (f"{admin}/partners/{PARTNER}",))):  # fmt: skip
            with httpx.Client(base_url=server.base_url, timeout=30) as c:
                assert c.post("/admin/login", data={"key": key}).status_code == 303
                for path in pages:
                    page = c.get(path)
                    assert page.status_code == 200
                    assert "sealed" in page.text
                    assert not any(p["name"] in page.text for p in seized.people)
                    _shows_the_figures(seized, page.text, partner_page="partners" in path)
                    base = path + "/export"
                    for fmt in ("csv", "json", "xlsx"):
                        refused = c.get(f"{base}.{fmt}")
                        assert refused.status_code == 409, (path, fmt)
                        assert "export-open" in refused.text
                    sealed = c.get(f"{base}.sealed")
                    assert sealed.status_code == 200
                    assert not any(p["email"].encode() in sealed.content for p in seized.people)
                    header = json.loads(sealed.content.splitlines()[0])
                    assert header["format"] == "petition-widget-sealed-export"
                    key_file = (seized.partner_secret_file if "partners" in path
                                else seized.secret_file)  # fmt: skip
                    sealed_file = tmp_path / "download.sealed"
                    sealed_file.write_bytes(sealed.content)
                    opened = subprocess.run(
                        [sys.executable, "-m", "server", "export-open", str(sealed_file),
                         "--secret-key", str(key_file), "--format", "json"],
                        check=False, capture_output=True, text=True, timeout=60,
                    )  # fmt: skip
                    assert opened.returncode == 0, opened.stderr
                    expected = [
                        p for p in seized.confirmed
                        if (p["partner"] and p["consent"]) or "partners" not in path
                    ]  # fmt: skip
                    assert sorted(r["email"] for r in json.loads(opened.stdout)) == sorted(
                        p["email"] for p in expected
                    )
        # A partner without a key of its own has nothing kept for it: every format says so.
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            assert c.post("/admin/login", data={"key": owner}).status_code == 303
            for fmt in ("csv", "sealed"):
                refused = c.get(f"{admin}/partners/keyless/export.{fmt}")
                assert refused.status_code == 409 and "no sealing key" in refused.text, fmt
