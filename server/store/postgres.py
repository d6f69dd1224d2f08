"""The PostgreSQL adapter: for several workers and hosts.

Writes run on pooled connections, in transactions of PostgreSQL's own; concurrent groups of
signatures spread their counter increments over `shards` rows so they do not queue on one.
The hot path and exports use asyncpg directly under `databases` (its `:name` parameters
rewritten as asyncpg's `$1` once per statement). A hung server or network ends in an error,
never in requests waiting forever: connecting and each statement have timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg

from server.domain.sealing import EmailHasher
from server.store.engine import Engine, FailureKind, Many, Plan, Transaction, UnknownDatabase
from server.store.limits import TABLES

logger = logging.getLogger("petition_widget.postgres")

SHARDS = 16
CONNECT_TIMEOUT = 5.0  # seconds to open a PostgreSQL connection
COMMAND_TIMEOUT = 10.0  # seconds one PostgreSQL statement may take before it is an error
MIGRATION_LOCK = 7_346_221  # advisory lock id held while migrating
LIMITS_LOCK = 7_346_222  # held while the limit tables are made (workers start together)
EXPORT_PREFETCH = 500  # rows a cursor fetches at a time
REBUILD_TIMEOUT = 24 * 3600.0  # seconds `rebuild_files` may take: VACUUM FULL of a big database
SCRUB_EVERY = 60.0  # seconds at least between two rewrites of the outbox (`scrub`)
SCRUB_LOCK_WAIT = "200ms"  # how long a scrub waits for the outbox's lock before it gives up
# Rows over which the outbox is not rewritten (`scrub`): VACUUM FULL copies every live row while
# it holds the table's lock, which signatures queue behind; a drained outbox has a handful. A
# backlog (a mail server down for hours) is scrubbed when it has gone.
SCRUB_MAX_ROWS = 10_000
SCRUB_TIMEOUT = COMMAND_TIMEOUT  # seconds the rewrite may take before it is given up

_NAMED_PARAM = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Positional:
    sql: str
    names: tuple[str, ...]

    def args(self, values: Mapping[str, Any] | None) -> list[Any]:
        return [values[name] for name in self.names] if values else []


_positional_cache: dict[str, Positional] = {}


def positional(sql: str) -> Positional:
    """`:name` parameters rewritten as asyncpg's `$1`, once per statement."""
    found = _positional_cache.get(sql)
    if found is None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        found = _positional_cache[sql] = Positional(_NAMED_PARAM.sub(number, sql), tuple(names))
    return found


def _forget_broken_connection(database: Any) -> None:
    """Drop the current task's `databases` connection object when nothing holds it any more
    (see `PostgresEngine._raw`). Reaches into `databases`' task map: the library offers no
    way to reset a connection, and this is confined to the adapter."""
    task = asyncio.current_task()
    found = database._connection_map.get(task) if task is not None else None
    if found is not None and found._connection_counter == 0:
        database._connection_map.pop(task, None)


def is_unavailable(exc: BaseException) -> bool:
    """Down, unreachable, hung, out of resources or shut down by an operator."""
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.CannotConnectNowError
        | asyncpg.InsufficientResourcesError
        | asyncpg.OperatorInterventionError,
    )


class PostgresTransaction:
    def __init__(self, conn: Any, sealed_events: EmailHasher | None = None) -> None:
        self.conn = conn  # an asyncpg connection
        self.sealed_events = sealed_events

    async def execute(self, sql: str, values: Mapping[str, Any] | None = None) -> None:
        statement = positional(sql)
        await self.conn.execute(statement.sql, *statement.args(values))

    async def fetch_one(
        self, sql: str, values: Mapping[str, Any] | None = None
    ) -> Sequence[Any] | None:
        statement = positional(sql)
        row: Sequence[Any] | None = await self.conn.fetchrow(statement.sql, *statement.args(values))
        return row

    async def fetch_all(
        self, sql: str, values: Mapping[str, Any] | None = None
    ) -> list[Sequence[Any]]:
        statement = positional(sql)
        return list(await self.conn.fetch(statement.sql, *statement.args(values)))

    async def fetch_val(self, sql: str, values: Mapping[str, Any] | None = None) -> Any:
        statement = positional(sql)
        return await self.conn.fetchval(statement.sql, *statement.args(values))

    async def execute_many(self, sql: str, values: Sequence[Mapping[str, Any]]) -> None:
        statement = positional(sql)
        await self.conn.executemany(statement.sql, map(statement.args, values))


class PostgresEngine(Engine):
    name = "postgresql"
    types: ClassVar[dict[str, str]] = {
        "pk": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "blob": "BYTEA",
        # No WAL for counts that matter for a minute: an increment costs no disk flush, and a
        # crash empties the tables, forgetting a minute of counts and every key with them.
        "unlogged": "UNLOGGED",
    }
    writer_concurrency = 4
    shards = SHARDS
    skip_locked = " FOR UPDATE SKIP LOCKED"

    @staticmethod
    def unavailable(exc: BaseException) -> bool:
        return is_unavailable(exc)

    @staticmethod
    def normalise_url(database_url: str) -> str:
        if not database_url.startswith(("postgresql://", "postgresql+asyncpg://")):
            raise UnknownDatabase("DATABASE_URL: a PostgreSQL URL starts with postgresql://")
        return database_url

    def database_options(self) -> dict[str, Any]:
        return {
            "min_size": 1,
            "max_size": 10,
            "timeout": CONNECT_TIMEOUT,
            "command_timeout": COMMAND_TIMEOUT,
        }

    _scrubbed = float("-inf")  # the event loop's time of the last `scrub`
    _limit_tables = False

    async def close(self) -> None:
        """Nothing of its own: the pool belongs to `databases`, closed with it."""

    @contextlib.asynccontextmanager
    async def limits(self) -> AsyncIterator[Transaction]:
        """A pooled connection's transaction, like any other: PostgreSQL has no single write
        lock to keep out of. The tables are made once per process, under an advisory lock
        (two workers' `CREATE TABLE IF NOT EXISTS` at once can fail)."""
        async with self._raw() as raw, raw.transaction():
            tx = PostgresTransaction(raw)
            if not self._limit_tables:
                await tx.execute(f"SELECT pg_advisory_xact_lock({LIMITS_LOCK})")
                for statement in TABLES:
                    await tx.execute(statement.format(**self.types))
                self._limit_tables = True
            yield tx

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._raw() as raw, raw.transaction():
            yield PostgresTransaction(raw, self.sealed_events)

    @contextlib.asynccontextmanager
    async def _raw(self) -> AsyncIterator[Any]:
        """This task's asyncpg connection, from `databases`' pool, forgotten if it broke.

        `databases` binds one connection object to each task. When handing its asyncpg
        connection back to the pool fails (the server went away just then), that object keeps
        a half-released state, and every later use in the same task fails with
        `AssertionError: Connection is already acquired`. The writer's tasks live as long as
        the server, so signing never recovered from such an outage; the object is dropped
        instead, and the task's next use makes a fresh one."""
        try:
            async with self.database.connection() as conn:
                yield conn.raw_connection
        except BaseException:
            _forget_broken_connection(self.database)
            raise

    async def run_plan(self, plan: Plan) -> list[int | None]:
        async with self._raw() as raw, raw.transaction():
            row = None
            while True:
                try:
                    sent = plan.send(row)
                except StopIteration as done:
                    return list(done.value)
                statement = positional(sent[0])
                if isinstance(sent, Many):
                    # One round trip for them all: asyncpg pipelines the value sets.
                    await raw.executemany(statement.sql, map(statement.args, sent.values))
                    row = None
                else:
                    row = await raw.fetchrow(statement.sql, *statement.args(sent[1]))

    async def rebuild_files(self) -> None:
        # Rewrites every table into new files, leaving dead tuples (old plaintext) behind; it
        # locks each table while it runs, so `seal` says to run it in a quiet hour. It takes
        # as long as the database is big: the pool's per-statement timeout does not apply.
        async with self._raw() as raw:
            await raw.execute("VACUUM FULL", timeout=REBUILD_TIMEOUT)

    async def scrub(self) -> None:
        """Rewrite the outbox into a new file (`VACUUM FULL outbox`): the rows of sent mails
        stay in its pages as dead tuples, their address and links encrypted under the hash key,
        until a rewrite; whoever seized the disk and that key would open them. At most every
        `SCRUB_EVERY` seconds, only while the outbox holds at most `SCRUB_MAX_ROWS` rows, and
        only if the table's lock comes within `SCRUB_LOCK_WAIT` and the rewrite ends within
        `SCRUB_TIMEOUT` (signatures queue behind it; it takes milliseconds on a drained
        outbox); otherwise a later call does it. Never raises for a busy or slow table: its
        callers have done their own work by then."""
        now = time.monotonic()
        if now - self._scrubbed < SCRUB_EVERY:
            return
        self._scrubbed = now
        try:
            async with self._raw() as raw:
                rows = await raw.fetchval(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM outbox LIMIT $1) AS o", SCRUB_MAX_ROWS + 1
                )
                if rows > SCRUB_MAX_ROWS:
                    logger.info("outbox not rewritten: over %d rows wait", SCRUB_MAX_ROWS)
                    return
                await raw.execute(f"SET lock_timeout = '{SCRUB_LOCK_WAIT}'")
                try:
                    await raw.execute("VACUUM FULL outbox", timeout=SCRUB_TIMEOUT)
                finally:
                    await raw.execute("RESET lock_timeout")
        except (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError, TimeoutError) as exc:
            logger.info("outbox not rewritten (%s): the next scrub tries again", type(exc).__name__)
            self._scrubbed = float("-inf")  # busy or slow: the next call tries again

    async def lock_for_migration(self, tx: Transaction) -> None:
        await tx.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")

    async def raw_rows(self, conn: Any, sql: str, values: dict[str, Any]) -> AsyncIterator[Any]:
        statement = positional(sql)
        async with conn.transaction():  # asyncpg cursors live in a transaction
            cursor = conn.cursor(statement.sql, *statement.args(values), prefetch=EXPORT_PREFETCH)
            async for row in cursor:
                yield row

    def classify(self, exc: BaseException) -> FailureKind:
        """Conflicts between concurrent groups are retried; a row the server refused is data;
        anything else means the server cannot be used."""
        if isinstance(exc, asyncpg.DeadlockDetectedError | asyncpg.SerializationError):
            return "retry"
        if isinstance(exc, asyncpg.DataError | asyncpg.IntegrityConstraintViolationError):
            return "data"
        return "unavailable"


ENGINE = PostgresEngine
