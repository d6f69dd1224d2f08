"""`petition-widget serve` warns at start-up of a SQLite database file (or its -wal or -shm)
that group or others may read or write, naming the file, and says nothing of one it made."""

from __future__ import annotations

import os
from pathlib import Path

from server.store.sqlite import sqlite_path
from tests.support import backends, live

WARNING = "is readable or writable by group or others"


def test_serve_warns_of_a_database_that_others_may_read(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # as on most machines; the server inherits it
    try:
        url = backends.sqlite_url(tmp_path)
        live.prepare(url)  # made by us: private
        with live.LiveServer(url, tmp_path) as quiet:
            pass
        assert WARNING not in quiet.log()
        db = sqlite_path(url)
        db.chmod(0o644)  # as an older release, a copy or a restore would leave it
        with live.LiveServer(url, tmp_path) as loud:
            pass
        lines = [line for line in loud.log().splitlines() if WARNING in line]
        # The database itself, and the -wal and -shm that SQLite made with its mode.
        assert [line.split(": ")[2].split()[0] for line in lines] == [
            str(db),
            f"{db}-wal",
            f"{db}-shm",
        ]
        assert all("(mode 0644)" in line and f"chmod 600 {db}" in line for line in lines)
    finally:
        os.umask(previous)
