"""`petition-widget signatures invalidate|restore`, on both engines: a dry run says how many and
changes nothing; by partner, time window, email domain (matched through its keyed hash) and
state, every counter moves exactly; each unusable flag is named in a clear error."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.domain import abuse
from server.store.storage import Storage
from tests.store.test_moderation import T, exact, opened, sign, signature, statuses
from tests.support import live

SLUG = "save-russian-lgbt-network"
HASH_KEY = "m" * 32  # the key of test_moderation's `HASHER`: domains are matched through it


def run(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEYS")}
    environment["EMAIL_HASH_KEY"] = HASH_KEY
    return subprocess.run(
        [sys.executable, "-m", "server", "signatures", *args, "--database-url", url],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def prepared(url: str) -> tuple[int, int, int]:
    """7 signatures through alpha from spam.example at T, 4 through beta at T + 1 day, and one
    quarantined through beta."""

    async def make() -> tuple[int, int, int]:
        storage, pid, alpha, beta = await opened(url)
        await sign(storage, *(signature(pid, f"a{i}@spam.example", partner_id=alpha)
                              for i in range(7)), at=T)  # fmt: skip
        await sign(storage, *(signature(pid, f"b{i}@example.org", partner_id=beta)
                              for i in range(4)), at=T + 86_400)  # fmt: skip
        await sign(storage, signature(pid, "q@example.org", partner_id=beta,
                                      status=abuse.QUARANTINED), at=T + 86_400)  # fmt: skip
        await storage.disconnect()
        return pid, alpha, beta

    return asyncio.run(make())


def now(url: str) -> tuple[dict[int | None, int], dict[str, int]]:
    async def read() -> tuple[dict[int | None, int], dict[str, int]]:
        storage = Storage(url)
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            return await exact(storage, pid), await statuses(storage)
        finally:
            await storage.disconnect()

    return asyncio.run(read())


def test_a_dry_run_counts_and_changes_nothing_then_the_action_recounts(
    database_url: str, tmp_path: Path
) -> None:
    _, alpha, beta = prepared(database_url)
    before = now(database_url)
    assert before == ({alpha: 7, beta: 4}, {"counted": 11, "quarantined": 1})
    dry = run(database_url, "invalidate", SLUG, "--domain", "SPAM.example", "--dry-run",
              cwd=tmp_path)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "Would invalidate on" in dry.stdout and ": 7 signature(s) and 0 waiting" in dry.stdout
    assert now(database_url) == before
    done = run(database_url, "invalidate", SLUG, "--domain", "spam.example", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Invalidated on" in done.stdout and "It now counts 4." in done.stdout
    assert now(database_url) == ({beta: 4}, {"counted": 4, "invalidated": 7, "quarantined": 1})
    # The quarantined one by itself, by partner and day.
    day = "2023-11-15"  # T + 1 day, a date alone: the whole of it
    held = run(database_url, "restore", SLUG, "--partner", "beta", "--from", day, "--until", day,
               "--quarantined", cwd=tmp_path)  # fmt: skip
    assert held.returncode == 0, held.stderr
    assert "Restored on" in held.stdout and ": 1 signature(s)" in held.stdout
    assert now(database_url)[0] == {beta: 5}
    back = run(database_url, "restore", SLUG, "--partner", "alpha", cwd=tmp_path)
    assert back.returncode == 0 and "It now counts 12." in back.stdout
    assert now(database_url) == ({alpha: 7, beta: 5}, {"counted": 12})


@pytest.mark.parametrize(
    "flags,says",
    [
        ([], "--partner, --from, --until, --domain or --quarantined: Choose at least one filter"),
        (["--from", "yesterday"], "--from: Not an ISO 8601 date or time"),
        (["--from", "2026-12-02", "--until", "2026-12-01"], "--until: “Until” must come after"),
        (["--partner", "Not A Code!"], "--partner: Not a partner code"),
        (["--domain", "not a domain"], "--domain: That is not a domain"),
    ],
)
def test_each_unusable_flag_is_named(tmp_path: Path, flags: list[str], says: str) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    live.prepare(url)  # a missing database is refused first (`cli.common.missing_database`)
    done = run(url, "invalidate", SLUG, *flags, cwd=tmp_path)
    assert done.returncode == 1
    assert says in done.stderr
    assert "Traceback" not in done.stderr
