"""The database's files on disk: a new SQLite database, its -wal and -shm are created readable
by their owner alone (0600) whatever the umask, and files that others may read are reported
(`serve` warns of them: tests/test_cli_file_modes.py)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.store.storage import Storage
from tests.support import petitions


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def permissive_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.parametrize("first", ["writer", "reader"])
def test_a_new_sqlite_database_and_its_wal_and_shm_are_private(
    tmp_path: Path, permissive_umask: int, first: str
) -> None:
    # The control: SQLite left to itself makes the same files readable by everyone.
    plain = sqlite3.connect(tmp_path / "plain.db")
    plain.execute("PRAGMA journal_mode = WAL")
    plain.execute("CREATE TABLE t (x)")
    assert mode(tmp_path / "plain.db") & 0o044 and mode(tmp_path / "plain.db-wal") & 0o044
    plain.close()

    db = tmp_path / "petitions.db"

    async def check() -> None:
        storage = Storage(f"sqlite:///{db}")
        await storage.connect()
        try:
            if first == "reader":  # a reader's connection may be the one to create the file
                assert await storage.database.fetch_val("SELECT 1") == 1
                assert mode(db) == 0o600
            await storage.migrate()
            await storage.import_petitions([petitions.example()])
            assert await storage.petition_id(petitions.example().slug) is not None
            # While connections are open, all three files exist.
            for name in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                assert mode(name) == 0o600, f"{name.name} is {mode(name):04o}"
            assert storage.exposed_files() == []
        finally:
            await storage.disconnect()

    asyncio.run(check())


def test_files_that_others_may_read_are_reported(database_url: str) -> None:
    async def check() -> None:
        storage = Storage(database_url)
        await storage.connect()
        try:
            await storage.migrate()
            await storage.import_petitions([petitions.example()])
            assert storage.exposed_files() == []
            if storage.dialect != "sqlite":
                return  # a database server guards its own files: nothing of ours to check
            db = Path(database_url.partition(":///")[2])
            db.chmod(0o644)
            Path(f"{db}-wal").chmod(0o620)  # writable by the group is as bad
            assert storage.exposed_files() == [(db, 0o644), (Path(f"{db}-wal"), 0o620)]
        finally:
            await storage.disconnect()

    asyncio.run(check())
