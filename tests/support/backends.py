"""Fresh databases for tests: a SQLite file in a temporary folder, or a new PostgreSQL database
on the server named by TEST_DATABASE_URL, dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import secrets
import urllib.parse
from pathlib import Path

import asyncpg
import pytest

REQUIRE_ALL = os.environ.get("PETITION_WIDGET_REQUIRE_ALL") == "1"


def unavailable(reason: str) -> None:
    """Skip, or fail when the suite must run everything (CI sets PETITION_WIDGET_REQUIRE_ALL)."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (required: PETITION_WIDGET_REQUIRE_ALL=1)", pytrace=False)
    pytest.skip(reason)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'petitions.db'}"


class PostgresDatabases:
    """Creates and drops databases on the PostgreSQL server of TEST_DATABASE_URL."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create(self) -> str:
        name = "pw_test_" + secrets.token_hex(6)
        asyncio.run(self._execute(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        parts = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + name))

    def drop_all(self) -> None:
        for name in self.created:
            asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.clear()

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


def postgres_admin_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url:
        unavailable("TEST_DATABASE_URL is not set: PostgreSQL tests cannot run")
    try:
        asyncio.run(_ping(url))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable(f"PostgreSQL at TEST_DATABASE_URL is not reachable: {type(exc).__name__}")
    return url


async def _ping(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    await conn.close()
