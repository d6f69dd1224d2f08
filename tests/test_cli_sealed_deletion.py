"""What a sealed server keeps of a queued mail, and what the commands that delete signer data
(`signatures remove`, `retention run`) leave in the files, on both engines, with a live sealed
server running beside them (as in production: its connections keep SQLite's WAL alive).

- A queued mail keeps its times only to the hour (rounded down: it is still due at once), and
  no clear `ref` that would join it to its signature (and so date the signature): the `ref` is
  in its box, with a keyed tag of its signer in clear, by which `signatures remove` deletes it.
- After `signatures remove` and `retention run`, no byte of the deleted rows' boxes is left in
  the files: on SQLite the WAL is reset to nothing (`Engine.scrub`), on PostgreSQL the outbox
  is rewritten without its dead rows (the other tables' dead rows wait for a vacuum:
  docs/privacy.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server.domain import sealing
from server.domain.form_tokens import FormTokens
from server.store.storage import Storage
from tests.support import live, petitions
from tests.web.test_sealed_data import _disk_bytes, _postgres_files, _query

SLUG = "save-russian-lgbt-network"
SIGN = f"/api/petitions/{SLUG}/signatures"
HASHER = sealing.EmailHasher(live.EMAIL_HASH_KEY.encode())
MAIL = {"SMTP_URL": "smtp://127.0.0.1:1", "MAIL_FROM": "p@example.org",
        "BASE_URL": "http://127.0.0.1:1"}  # fmt: skip


def _command(url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEYS")}
    env.update(DATABASE_URL=url, EMAIL_HASH_KEY=live.EMAIL_HASH_KEY, SECRET_KEYS=live.SECRET)
    done = subprocess.run(
        [sys.executable, "-m", "server", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def _sign(server: live.LiveServer, count: int) -> list[dict[str, str]]:
    tokens = FormTokens([live.SECRET], lifetime=7200, min_age=0)
    people = [live.new_signer("D") for _ in range(count)]
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for person in people:
            answer = client.post(SIGN, json={"token": tokens.issue(SLUG, ""), **person})
            assert answer.status_code in (201, 202), answer.text
    return people


def _files(url: str) -> bytes:
    """What the commands must have cleared: SQLite's db and WAL, or PostgreSQL's files."""
    return _disk_bytes(url) if url.startswith("sqlite") else _postgres_files(url)


def test_a_queued_mail_keeps_its_hour_and_signatures_remove_deletes_it(
    database_url: str, tmp_path: Path
) -> None:
    public, _ = sealing.new_key_pair()
    live.prepare(database_url, [petitions.example(confirmation="email")])
    # A mail server that refuses every connection: the mails stay queued, retried.
    with live.LiveServer(database_url, tmp_path, SEALING_PUBLIC_KEY=public, **MAIL) as server:
        before = int(time.time())
        asker, bystander = _sign(server, 2)
        after = int(time.time())
        tried = "SELECT COUNT(*) FROM outbox WHERE attempts > 0"
        deadline = time.monotonic() + 30
        while _query(database_url, tried) != [(2,)]:  # due at once, though queued to the hour
            assert time.monotonic() < deadline, "the queued mails were not tried at once"
            time.sleep(0.1)
        # /healthz counts the backlog from the end of the hour the rows keep: a fresh one is
        # not reported as up to an hour old.
        health = httpx.get(server.url("/healthz"), timeout=10).json()
        assert health["oldest_unsent_mail_s"] <= time.time() - before + 1
        rows = _query(database_url, "SELECT payload, created_at FROM outbox")
        assert len(rows) == 2
        pending = dict(_query(database_url, "SELECT ref, sealed FROM pending_signatures"))
        for text, created_at in rows:
            payload = json.loads(text)
            assert created_at in {sealing.hour(before), sealing.hour(after)}  # to the hour
            assert "ref" not in payload  # in clear it would join the mail to its signature
            secrets = HASHER.open_mail(payload["box"])
            assert secrets is not None and secrets["ref"] in pending
        mails = {live.recipient(json.loads(text)): json.loads(text) for text, _ in rows}
        mine = mails[asker["email"]]
        # What the asker's rows hold, sealed, must leave the files too: its mail's box, and on
        # SQLite its pending row's (PostgreSQL keeps that dead row until a vacuum: docs).
        boxes = {mine["box"]}
        if database_url.startswith("sqlite"):
            boxes.add(pending[live.opened(mine)["ref"]])
        assert all(box.encode() in _files(database_url) for box in boxes)
        outbox_file = _filenode(database_url)

        removed = _command(database_url, "signatures", "remove", SLUG, "--email", "-",
                           stdin=asker["email"] + "\n")  # fmt: skip
        assert "0 counted signature(s) and 1 waiting" in removed.stdout
        left = [live.recipient(json.loads(r[0])) for r in _query(database_url, _PAYLOADS)]
        assert left == [bystander["email"]]  # the asker's unsent mail went, the other stayed
        if database_url.startswith("sqlite"):
            disk = _files(database_url)
            for box in boxes:
                assert box.encode() not in disk, "a removed signer's row is still in the files"
            wal = Path(database_url.removeprefix("sqlite:///") + "-wal")
            assert not wal.exists() or wal.stat().st_size == 0  # reset while the server runs
        else:
            # The outbox was rewritten into a new file, without its dead rows. (Whether the
            # removed row's bytes are gone depends on the whole server: a transaction open in
            # any database when the rewrite starts keeps rows deleted after it began, until
            # the next scrub. docs/privacy.md)
            assert _filenode(database_url) != outbox_file


_PAYLOADS = "SELECT payload FROM outbox"


def _filenode(url: str) -> object:
    if url.startswith("sqlite"):
        return None
    return _query(url, "SELECT pg_relation_filenode('outbox')")


def test_retention_run_leaves_no_deleted_box_in_the_files(
    database_url: str, tmp_path: Path
) -> None:
    public, _ = sealing.new_key_pair()
    petition = dataclasses.replace(petitions.example(), retention_days=1)
    live.prepare(database_url, [petition])
    with live.LiveServer(database_url, tmp_path, SEALING_PUBLIC_KEY=public) as server:
        _sign(server, 3)
        boxes = [r[0] for r in _query(database_url, "SELECT sealed FROM signatures")]
        assert len(boxes) == 3 and all(boxes)
        close_days_ago(database_url, 2)
        outbox_file = _filenode(database_url)
        kept = "SELECT COUNT(*) FROM signatures WHERE sealed IS NOT NULL"
        # A dry run says what is due and deletes nothing.
        dry = _command(database_url, "retention", "run", "--dry-run")
        assert "3 signature(s) with personal data" in dry.stdout
        assert "Dry run: nothing deleted" in dry.stdout
        assert _query(database_url, kept) == [(3,)]
        _command(database_url, "retention", "run")
        assert _query(database_url, kept) == [(0,)]
        if database_url.startswith("sqlite"):  # PostgreSQL: dead rows until a vacuum (docs)
            disk = _files(database_url)
            for box in boxes:
                assert box.encode() not in disk, "a retained-away box is still in the files"
            wal = Path(database_url.removeprefix("sqlite:///") + "-wal")
            assert not wal.exists() or wal.stat().st_size == 0
        else:
            assert _filenode(database_url) != outbox_file  # scrubbed: the outbox rewritten


def close_days_ago(url: str, days: int, slug: str = SLUG) -> None:
    """The petition closed `days` ago: past a retention of fewer days."""

    async def close() -> None:
        storage = Storage(url)
        await storage.connect()
        try:
            async with storage.write() as tx:
                await tx.execute(
                    "UPDATE petitions SET status = 'closed', closed_at = :t WHERE slug = :s",
                    {"t": int(time.time()) - days * 86_400, "s": slug},
                )
        finally:
            await storage.disconnect()

    asyncio.run(close())
