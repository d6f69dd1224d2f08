"""Sealing a plaintext database in place, on both engines: every row sealed exactly as it was,
the partner copies where they are due, counts unchanged, a second run a no-op; and `petition-widget
seal` killed with SIGKILL part-way finishes when run again."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import nacl.secret
import pytest

from server.domain import sealing
from server.store import outbox, seal, webhook_job
from server.store.storage import Storage
from tests.support import petitions
from tests.web.test_sealed_data import _postgres_files

HASH_KEY = "seal-test-hash-key-0123456789abcdefghijkl"
HASHER = sealing.EmailHasher(HASH_KEY.encode())
T = 1_700_000_123


async def plaintext_database(url: str, n: int, partner_key: str) -> tuple[Storage, int, int]:
    """A migrated database holding `n` plaintext signatures (every third through a partner
    with a key, every other one of those consenting) and two pending submissions."""
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    await storage.import_petitions([petitions.example()])
    pid = await storage.petition_id(petitions.example().slug)
    assert pid is not None
    partner = await storage.add_partner(pid, "allies", "Allies", partner_key)
    rows = []
    for i in range(n):
        via = partner.id if i % 3 == 0 else None
        rows.append({
            "p": pid, "partner": via, "key": HASHER.email_key(f"s{i}@example.org"),
            "email": f"s{i}@example.org", "name": f"Plain Signer {i}", "comment": f"said {i}",
            "consent": int(via is not None and i % 2 == 0), "at": T + i, "ref": f"ref-{i}",
        })  # fmt: skip
    sql = (
        "INSERT INTO {table} (petition_id, partner_id, email_key, email, name, comment, lang, "
        "consent_version, consent_organiser, consent_partner, created_at, ref) VALUES "
        "(:p, :partner, :key, :email, :name, :comment, 'en', 'v1', 1, :consent, :at, :ref)"
    )
    async with storage.write() as tx:
        for values in rows:
            await tx.execute(sql.format(table="signatures"), values)
        await tx.execute(
            "INSERT INTO counters (petition_id, partner_id, shard, n) VALUES (:p, 0, 0, :n)",
            {"p": pid, "n": n},
        )
        for i in range(2):
            values = {**rows[0], "key": f"k{i}", "email": f"w{i}@example.org",
                      "name": f"Waiting {i}", "ref": f"pending-{i}"}  # fmt: skip
            await tx.execute(sql.format(table="pending_signatures"), values)
    return storage, pid, partner.id


def _disk(url: str) -> bytes:
    if url.startswith("sqlite"):
        db = url.removeprefix("sqlite:///")
        return b"".join(
            Path(f"{db}{s}").read_bytes() for s in ("", "-wal", "-shm") if Path(f"{db}{s}").exists()
        )
    return _postgres_files(url)


async def rows(storage: Storage) -> list[tuple[Any, ...]]:
    found = await storage.database.fetch_all(
        "SELECT id, name, email, comment, sealed, partner_sealed, created_at, signed_at, "
        "consent_partner, email_domain FROM signatures ORDER BY id"
    )
    return [tuple(r[i] for i in range(10)) for r in found]


def test_sealing_a_plaintext_database_in_place(database_url: str) -> None:
    public, secret = sealing.new_key_pair()
    partner_public, partner_secret = sealing.new_key_pair()

    async def run() -> None:
        storage, pid, _ = await plaintext_database(database_url, 30, partner_public)
        try:
            # What a plaintext server kept beside: links and used tokens with exact expiries,
            # and a queued mail with its address and links in clear.
            async with storage.write() as tx:
                await tx.execute(
                    "INSERT INTO links (digest, kind, petition_id, ref, expires_at) "
                    "VALUES ('d1', 'confirm', :p, 'pending-0', :at)",
                    {"p": pid, "at": T + 604_800},
                )
                await tx.execute(
                    "INSERT INTO used_tokens (nonce, expires_at) VALUES ('n1', :at)",
                    {"at": T + 7_260},
                )
                mail = {"kind": "confirm", "ref": "pending-0", "to": "w0@example.org",
                        "confirm": "tok-c", "withdraw": "tok-w", "lang": "en"}  # fmt: skip
                await outbox.add(tx, "mail", mail, T)
                # The first sealed release boxed only the address (`to_box`), the second kept
                # `ref` in clear beside its box: both are sealed as the writer seals now.
                first = {"kind": "confirm", "ref": "pending-1",
                         "to_box": _bare_box("w1@example.org"),
                         "confirm": "tok-c1", "withdraw": "tok-w1", "lang": "en"}  # fmt: skip
                await outbox.add(tx, "mail", first, T + 1)
                second = {
                    "kind": "already_signed",
                    "ref": "ref-2",
                    "lang": "en",
                    "box": HASHER.seal_mail({"to": "s2@example.org", "withdraw": "tok-w2"}),
                }
                await outbox.add(tx, "mail", second, T + 2)
            before = await rows(storage)
            totals = await storage.totals()
            seen: list[seal.Progress] = []
            done = await seal.seal_database(
                storage, public, HASHER, lambda p: seen.append(seal.Progress(p.done, p.total))
            )
            assert done == 32 and seen[-1] == seal.Progress(32, 32)
            after = await rows(storage)
            assert await storage.totals() == totals
            assert await seal.left(storage) == 0
            owner = sealing.parse_secret_key(secret)
            partner = sealing.parse_secret_key(partner_secret)
            for old, new in zip(before, after, strict=True):
                assert new[1:4] == ("", "", None)
                record = sealing.open_box(new[4], owner)
                assert (record["name"], record["email"], record["comment"]) == old[1:4]
                assert record["signed_at"] == old[6]
                assert new[6] == sealing.hour(old[6])  # only the hour in clear
                assert new[9] == HASHER.domain_key("example.org")
                if old[8]:  # consented to a partner that has a key: its copy
                    copy = sealing.open_box(new[5], partner)
                    assert copy["email"] == old[2] and "comment" not in copy
                else:
                    assert new[5] is None
            pending = await storage.database.fetch_all(
                "SELECT name, email, sealed FROM pending_signatures"
            )
            assert all(r[0] == "" and r[1] == "" and r[2] for r in pending)
            expiries = [
                await storage.database.fetch_val(f"SELECT expires_at FROM {table}")
                for table in ("links", "used_tokens")
            ]
            assert expiries == [sealing.hour_after(T + 604_800), sealing.hour_after(T + 7_260)]
            mails = await storage.database.fetch_all(
                "SELECT payload, created_at, available_at FROM outbox ORDER BY id"
            )
            payloads = [json.loads(m[0]) for m in mails]
            for payload in payloads:  # nothing in clear that names the signer or its row
                assert not {"to", "to_box", "confirm", "withdraw", "ref"} & set(payload)
            assert [HASHER.open_mail(p["box"]) for p in payloads] == [
                {"to": "w0@example.org", "confirm": "tok-c", "withdraw": "tok-w",
                 "ref": "pending-0"},
                {"to": "w1@example.org", "confirm": "tok-c1", "withdraw": "tok-w1",
                 "ref": "pending-1"},
                {"to": "s2@example.org", "withdraw": "tok-w2", "ref": "ref-2"},
            ]  # fmt: skip
            assert [p["kind"] for p in payloads] == ["confirm", "confirm", "already_signed"]
            # `signatures remove` finds them by the signer's keyed tag.
            tags = [
                HASHER.mail_tag(HASHER.email_key(a))
                for a in ("w0@example.org", "w1@example.org", "s2@example.org")
            ]
            assert [p["signer"] for p in payloads] == tags
            # Their times to the hour, rounded down: still due at once.
            assert all(m[1] == m[2] == sealing.hour(T) for m in mails)
            assert await seal.seal_database(storage, public, HASHER) == 0  # idempotent
            assert await rows(storage) == after
        finally:
            await storage.disconnect()

    asyncio.run(run())
    # The files were rebuilt: the plaintext left them too.
    disk = _disk(database_url)
    assert b"Plain Signer" not in disk and b"w0@example.org" not in disk


def test_seal_killed_part_way_finishes_when_run_again(database_url: str, tmp_path: Path) -> None:
    public, secret = sealing.new_key_pair()
    n = 6_000

    async def prepare() -> list[tuple[Any, ...]]:
        storage, _, _ = await plaintext_database(database_url, n, sealing.new_key_pair()[0])
        try:
            return await rows(storage)
        finally:
            await storage.disconnect()

    before = asyncio.run(prepare())
    env = {**os.environ, "DATABASE_URL": database_url, "SEALING_PUBLIC_KEY": public,
           "EMAIL_HASH_KEY": HASH_KEY}  # fmt: skip
    command = [sys.executable, "-m", "server", "seal"]
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    assert first.stderr is not None
    progress = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it once it has sealed some, not all
        progress += first.stderr.read(1)
        done = [int(m.replace(",", "")) for m in _counts(progress)]
        if done and 0 < done[-1] < n:
            break
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert first.returncode == -signal.SIGKILL

    async def sealed_so_far() -> int:
        storage = Storage(database_url)
        await storage.connect()
        try:
            return n + 2 - await seal.left(storage)
        finally:
            await storage.disconnect()

    assert 0 < asyncio.run(sealed_so_far()) < n + 2  # stopped part-way
    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=300, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr

    async def check() -> None:
        storage = Storage(database_url)
        await storage.connect()
        try:
            after = await rows(storage)
            owner = sealing.parse_secret_key(secret)
            assert len(after) == len(before)
            for old, new in zip(before, after, strict=True):
                record = sealing.open_box(new[4], owner)
                assert (record["name"], record["email"]) == (old[1], old[2])
                assert new[1:4] == ("", "", None)
            assert sum((await storage.totals()).values()) == n  # counts unchanged
        finally:
            await storage.disconnect()

    asyncio.run(check())
    assert "Sealed" in again.stdout


def test_pending_rows_go_first_so_a_confirmation_meanwhile_arrives_sealed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running server confirms a submission while `seal` works on the pending rows: the row
    it moves into `signatures` arrives there as it was. Pending rows first, it is sealed then
    or sealed with the counted rows that follow; counted rows first, it would land among them
    in clear after they were done, and need another pass (here none is allowed)."""
    public, _ = sealing.new_key_pair()
    monkeypatch.setattr(seal, "BATCH", 1)
    monkeypatch.setattr(seal, "PASSES", 1)

    async def confirm_one() -> bool:
        """What the server's confirmation does, on its own connection, once `seal` has sealed
        a pending row and another is still in clear; whether it did."""
        server = Storage(database_url)
        await server.connect()
        try:
            async with server.write() as tx:
                sealed = await tx.fetch_val("SELECT COUNT(sealed) FROM pending_signatures")
                clear = await tx.fetch_val(
                    "SELECT id FROM pending_signatures WHERE sealed IS NULL ORDER BY id LIMIT 1"
                )
                if not sealed or clear is None:
                    return False
                await tx.execute(
                    "INSERT INTO signatures (petition_id, partner_id, email_key, email, name, "
                    "comment, lang, consent_version, consent_organiser, consent_partner, "
                    "created_at, ref, sealed, partner_sealed, email_domain) "
                    "SELECT petition_id, partner_id, email_key, email, name, comment, lang, "
                    "consent_version, consent_organiser, consent_partner, created_at, ref, "
                    "sealed, partner_sealed, email_domain FROM pending_signatures WHERE id = :id",
                    {"id": clear},
                )
                await tx.execute("DELETE FROM pending_signatures WHERE id = :id", {"id": clear})
                return True
        finally:
            await server.disconnect()

    async def run() -> None:
        storage, _, _ = await plaintext_database(database_url, 3, sealing.new_key_pair()[0])
        confirmed: list[bool] = []

        def report(_: seal.Progress) -> None:  # after each batch; no transaction is open
            if not any(confirmed):
                confirmed.append(asyncio.run_coroutine_threadsafe(confirm_one(), other).result())

        other = asyncio.new_event_loop()
        thread = threading.Thread(target=other.run_forever, daemon=True)
        thread.start()
        try:
            await seal.seal_database(storage, public, HASHER, report)
            assert any(confirmed)  # the server did confirm one meanwhile
            assert await seal.left(storage) == 0, "a confirmed row stayed in clear"
        finally:
            other.call_soon_threadsafe(other.stop)
            thread.join(10)
            await storage.disconnect()

    asyncio.run(run())


def _bare_box(address: str) -> str:
    """A box of the first sealed release: the bare address, under the same derived key."""
    box = nacl.secret.SecretBox(HASHER._address_key).encrypt(address.encode())
    return base64.b64encode(box).decode()


def _counts(text: str) -> list[str]:
    """The rows done in each of `seal`'s progress lines."""
    return [m.group(1) for m in re.finditer(r"\] ([\d,]+)/", text)]


def test_seal_boxes_waiting_and_failed_webhook_events(database_url: str) -> None:
    """Webhook events queued in clear before the server was sealed leave `seal` as a sealed
    server writes them: the event in its box (opened as the job opens it), the counted one with
    its signature's tag (what a withdrawal looks for), times to the hour; a failed one stays
    failed, never due."""

    async def run() -> None:
        storage = Storage(database_url)
        await storage.connect()
        await storage.migrate()
        public, _ = sealing.new_key_pair()
        waiting = {
            "endpoint_id": 7,
            "event_id": "msg_a",
            "type": "signature.counted",
            "timestamp": T,
            "sequence": 1,
            "data": {"signature_id": "ref-w", "country": "KZ", "email": "w@x.org"},
        }
        failed = {"endpoint_id": 7, "event_id": "msg_b", "type": "petition.closed",
                  "timestamp": T + 5, "sequence": 2, "data": {"petition": "p"}}  # fmt: skip
        try:
            async with storage.write() as tx:
                for event, at, failed_at in ((waiting, T, None), (failed, T + 5, T + 9)):
                    await tx.execute(
                        "INSERT INTO outbox (topic, payload, created_at, available_at, "
                        "endpoint_id, failed_at) VALUES ('webhook', :p, :at, :due, 7, :f)",
                        {"p": json.dumps(event), "at": at, "f": failed_at,
                         "due": outbox.NEVER if failed_at else at},
                    )  # fmt: skip
            await seal.seal_database(storage, public, HASHER)
            rows = await storage.database.fetch_all(
                "SELECT payload, created_at, available_at, failed_at FROM outbox ORDER BY id"
            )
            kept = [json.loads(r[0]) for r in rows]
            for payload, event in zip(kept, (waiting, failed), strict=True):
                assert "ref-w" not in json.dumps(payload) and str(T) not in json.dumps(payload)
                assert webhook_job.opened(job, payload) == event
                assert {k: payload[k] for k in ("endpoint_id", "event_id", "type", "sequence")} == {
                    k: event[k] for k in ("endpoint_id", "event_id", "type", "sequence")
                }
            assert kept[0]["signature"] == HASHER.event_tag("ref-w") and "signature" not in kept[1]
            assert [(r[1], r[2], r[3]) for r in rows] == [
                (sealing.hour(T), sealing.hour(T), None),
                (sealing.hour(T), outbox.NEVER, sealing.hour_after(T + 9)),
            ]
            before = [r[0] for r in rows]
            await seal.seal_database(storage, public, HASHER)  # idempotent
            again = await storage.database.fetch_all("SELECT payload FROM outbox ORDER BY id")
            assert [r[0] for r in again] == before
        finally:
            await storage.disconnect()

    job = webhook_job.WebhookJob(open_event=HASHER.open_mail)
    asyncio.run(run())
