"""Confirmation by email under load: what is stored after each step, the mail job's drain, and
the checks that every 202 left a pending signature and exactly one mail, and every confirmed
link exactly one count.

The scenario itself (`run.Bench.confirmation`) signs with the petition set to confirm by email
(each accepted signature answers `202` and writes a pending row, its two links and an outbox
mail row in its group's transaction), then lets the server's mail job empty the outbox into
the SMTP sink while nothing else runs (`drain`), then POSTs every confirmation link the sink
caught. Each check reads the database after its step, with a connection of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import load, servers
from server.domain.sealing import EmailHasher
from server.store.storage import Storage

POLL = 0.1  # seconds between looks at the outbox during the drain

_WAITING = "SELECT COUNT(*) FROM outbox WHERE topic = 'mail' AND failed_at IS NULL"
_FAILED = "SELECT COUNT(*) FROM outbox WHERE topic = 'mail' AND failed_at IS NOT NULL"
_PENDING = "SELECT COUNT(*) FROM pending_signatures WHERE petition_id = :p"


@dataclasses.dataclass(frozen=True)
class Stored:
    """What the database holds for the petition."""

    counted: int  # its counter total
    signatures: int  # its signature rows (confirmed, counting)
    pending: int  # its pending signatures (waiting for their link)
    waiting: int  # mail rows of the outbox still to send (of any petition: there is one)
    failed: int  # mail rows given up


def stored(database_url: str, slug: str) -> Stored:
    async def run() -> Stored:
        storage = Storage(database_url)
        await storage.connect()
        try:
            petition_id = await storage.petition_id(slug)
            assert petition_id is not None
            db = storage.database
            return Stored(
                counted=(await storage.totals()).get(petition_id, 0),
                signatures=await storage.stored_signatures(petition_id),
                pending=int(await db.fetch_val(_PENDING, {"p": petition_id})),
                waiting=int(await db.fetch_val(_WAITING)),
                failed=int(await db.fetch_val(_FAILED)),
            )
        finally:
            await storage.disconnect()

    return asyncio.run(run())


@dataclasses.dataclass
class Drain:
    """The mail job emptying the outbox after the sign load, with nothing else to do."""

    backlog: int  # mail rows waiting when the drain began (the sign load had just ended)
    left: int  # still waiting when it ended: 0 unless `patience` ran out
    seconds: float  # from the first look at the outbox to the first that found it empty
    cpu: dict[str, float]  # cores used meanwhile: server, sink, other
    check: str = ""
    failed: bool = False

    @property
    def sent(self) -> int:
        return self.backlog - self.left

    @property
    def per_second(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def cpu_per_mail_us(self, role: str) -> float:
        return self.cpu[role] * self.seconds / self.sent * 1e6 if self.sent else 0.0


def drain(database_url: str, server_pid: int, sink_pid: int, patience: float) -> Drain:
    """Watch the outbox until no mail row waits (or `patience` seconds pass)."""

    async def watch() -> tuple[int, int, float]:
        storage = Storage(database_url)
        await storage.connect()
        try:
            started = time.monotonic()
            backlog = waiting = int(await storage.database.fetch_val(_WAITING))
            while waiting and time.monotonic() - started < patience:
                await asyncio.sleep(POLL)
                waiting = int(await storage.database.fetch_val(_WAITING))
            return backlog, waiting, time.monotonic() - started
        finally:
            await storage.disconnect()

    before = {"server": servers.cpu_seconds(server_pid), "sink": servers.cpu_seconds(sink_pid)}
    machine = servers.machine_busy_seconds()
    started = time.monotonic()
    backlog, left, seconds = asyncio.run(watch())
    elapsed = time.monotonic() - started
    used = {
        "server": servers.cpu_seconds(server_pid) - before["server"],
        "sink": servers.cpu_seconds(sink_pid) - before["sink"],
    }
    other = servers.machine_busy_seconds() - machine - sum(used.values())
    cpu = {role: n / elapsed for role, n in used.items()} | {"other": max(0.0, other) / elapsed}
    return Drain(backlog, left, seconds, cpu)


def caught_links(mails: Sequence[dict[str, Any]]) -> list[str]:
    """The confirmation tokens of the mails the sink caught."""
    return [m["confirm"] for m in mails if m.get("confirm")]


def unsent_links(database_url: str, email_hash_key: str) -> list[str]:
    """The confirmation tokens of the mails still in the outbox (its rows hold them, encrypted
    under the server's hash key, until the mail is sent): for the profile, which does not wait
    for every mail."""
    hasher = EmailHasher(email_hash_key.encode())

    async def run() -> list[str]:
        storage = Storage(database_url)
        await storage.connect()
        try:
            rows = await storage.database.fetch_all(
                "SELECT payload FROM outbox WHERE topic = 'mail' AND failed_at IS NULL"
            )
        finally:
            await storage.disconnect()
        payloads = [json.loads(row[0]) for row in rows]
        opened = [
            {**p, **(hasher.open_mail(p["box"]) or {})} if "box" in p else p for p in payloads
        ]
        return [p["confirm"] for p in opened if p.get("kind") == "confirm" and "confirm" in p]

    return asyncio.run(run())


def write_paths(tokens: Sequence[str], path: Path) -> int:
    """Write the path of each confirmation link, one a line, for wrk; returns how many."""
    path.write_text("".join(f"/confirm/{token}\n" for token in tokens))
    return len(tokens)


# --- Checks: words, and whether they failed ------------------------------------------------------


def sign_check(signed: load.Load, after: Stored, mails: int) -> tuple[str, bool]:
    """After the sign load and the drain: a pending signature per 202, nothing counted yet, and
    a mail per 202, sent (`mails`, caught by the sink) or not (still in the outbox). Every bench
    signer is a new address, so the quotas (3 mails per signer and petition, 5 a day per
    address) suppress none."""
    acknowledged = signed.acknowledged
    problems = _load_problems(signed)
    queued = mails + after.waiting + after.failed
    words = (
        f"pending {after.pending:,} = acknowledged {acknowledged:,}; mails {queued:,} "
        f"(sent {mails:,}, waiting {after.waiting:,}, failed {after.failed:,}); "
        f"counter {after.counted:,}, rows {after.signatures:,}"
    )
    if not (after.pending == acknowledged == queued and after.counted == after.signatures == 0):
        problems.insert(0, f"MISMATCH: {words}")
    if problems:
        return "; ".join(problems), True
    return f"ok: {words}", False


def mail_check(drained: Drain, mails: Sequence[dict[str, Any]], after: Stored) -> tuple[str, bool]:
    """After the drain: the outbox is empty and every mail reached the sink exactly once (one
    per recipient, each signer being a new address), each with its confirmation link."""
    ids = {m["message_id"] for m in mails}
    recipients = {m["to"] for m in mails}
    links = sum(1 for m in mails if m.get("confirm"))
    words = (
        f"{len(mails):,} mails caught, {len(recipients):,} recipients, {len(ids):,} Message-IDs, "
        f"{links:,} confirmation links; outbox waiting {after.waiting:,}, failed {after.failed:,}"
    )
    problems = []
    if drained.left:
        problems.append(f"{drained.left:,} mails still waiting after the patience ran out")
    if not (len(mails) == len(recipients) == len(ids) == links) or after.waiting or after.failed:
        problems.insert(0, f"MISMATCH: {words}")
    if problems:
        return "; ".join(problems), True
    return f"ok: {words}", False


def confirm_check(confirmed: load.Load, links: int, after: Stored, signed: int) -> tuple[str, bool]:
    """After the confirmation load: the counter equals the signature rows equals the confirmed
    links (200s), and the pending signatures are those not confirmed."""
    problems = _load_problems(confirmed)
    ok = confirmed.acknowledged
    words = (
        f"counter {after.counted:,} = rows {after.signatures:,} = confirmed {ok:,} of {links:,} "
        f"links; pending {after.pending:,}"
    )
    if not (after.counted == after.signatures == ok == links and after.pending == signed - ok):
        problems.insert(0, f"MISMATCH: {words}")
    if problems:
        return "; ".join(problems), True
    return f"ok: {words}", False


def _load_problems(done: load.Load) -> list[str]:
    problems = []
    refused = {s: n for s, n in done.statuses.items() if 400 <= s < 500}
    if refused:
        listed = ", ".join(f"{s}×{n:,}" for s, n in sorted(refused.items()))
        problems.append(f"the server refused requests ({listed}): the bench is broken")
    if done.unanswered:
        problems.append(f"{done.unanswered:,} requests never answered")
    if not done.acknowledged:
        problems.append("nothing acknowledged")
    return problems
