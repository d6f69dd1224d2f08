"""The SQLite adapter: the embedded default.

SQLite allows one writer at a time, so the write path is one long-lived sqlite3 connection
held by this adapter, used by one transaction at a time (an asyncio lock within the process,
a file lock between worker processes). A transaction's statements run on the event loop's own
thread; only what waits goes to a helper thread: taking the write lock (the file lock, then
`BEGIN IMMEDIATE`) and `COMMIT` (the disk flush). A writer thread that ran the statements
itself had to win the GIL back from the busy event loop after each one (sqlite3 releases it
around every step): under load a group of 25 signatures took 4.9 ms instead of 0.9 ms, most of
it waiting for the GIL.

Writers of other worker processes queue on the file lock, which hands over the moment it is
released, rather than in SQLite's busy handler, which polls with sleeps of up to 100 ms: with
two workers that meant seconds of latency and 503s. Reads go through `databases` (aiosqlite),
one connection per task, and never wait for the writer (WAL).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from server.domain.sealing import EmailHasher
from server.store.engine import Engine, FailureKind, Many, Plan, Transaction, UnknownDatabase
from server.store.limits import TABLES

BUSY_TIMEOUT_MS = 5_000
SCRUB_WAIT_MS = 200  # the longest a WAL reset waits for readers while holding the write lock


def sqlite_path(database_url: str) -> Path:
    """The file of a `sqlite:///` URL (three slashes: relative, four: absolute)."""
    _, _, rest = database_url.partition(":///")
    return Path(rest)


def _pragmas(synchronous: str) -> list[str]:
    return [
        f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
        # FULL: a commit reaches the disk before we answer, so it survives a power loss. With
        # WAL and group commit that costs one fsync per group, not per signature.
        f"PRAGMA synchronous = {synchronous.upper()}",
        "PRAGMA foreign_keys = ON",
        # Deleted rows (a sent mail's address, a withdrawn signer, retention) are overwritten
        # with zeros, not left in free pages for whoever copies the file.
        "PRAGMA secure_delete = ON",
    ]


def create_private(database: object) -> None:
    """Create a missing database file empty, readable and writable by its owner alone (0600),
    before SQLite opens it: SQLite takes an empty file for a new database, and gives the `-wal`
    and `-shm` files it makes the database file's own mode. Left to itself it would create all
    three 0644 (under the usual umask), for any user of the machine to copy."""
    name = os.fspath(database) if isinstance(database, str | os.PathLike) else ""
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    try:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # it exists (another worker was first), or SQLite will say why it cannot
        return


def exposed(path: Path) -> list[tuple[Path, int]]:
    """The files of the database at `path` (itself, `-wal`, `-shm`) that exist and that group
    or others may read or write, with their modes."""
    found = []
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            found.append((file, mode))
    return found


def _factory(synchronous: str) -> type[sqlite3.Connection]:
    """A sqlite3 connection class that sets our pragmas on every new connection: `databases`
    opens one per task, and per-connection pragmas would otherwise be lost. Whichever
    connection comes first, the writer's or a reader's, creates a missing file private."""
    pragmas = _pragmas(synchronous)

    class Connection(sqlite3.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            create_private(args[0] if args else kwargs.get("database"))
            super().__init__(*args, **kwargs)
            for pragma in pragmas:
                self.execute(pragma)

    return Connection


def open_sqlite(path: Path, synchronous: str) -> sqlite3.Connection:
    """A plain sqlite3 connection with our pragmas, in autocommit mode (we say BEGIN)."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, factory=_factory(synchronous)
    )
    # Stored in the file: set once, it holds for every later connection, readers' included.
    conn.execute("PRAGMA journal_mode = WAL")
    return conn


def is_unavailable(exc: BaseException) -> bool:
    """Locked, full, read-only or failing disk, or a file that cannot be opened."""
    return isinstance(exc, OSError | TimeoutError | sqlite3.OperationalError)


class SqliteTransaction:
    """A transaction on the writer's sqlite3 connection. Statements take microseconds and run
    on the event loop (see the module's docstring)."""

    def __init__(self, conn: sqlite3.Connection, sealed_events: EmailHasher | None = None) -> None:
        self.conn = conn
        self.sealed_events = sealed_events

    async def execute(self, sql: str, values: Mapping[str, Any] | None = None) -> None:
        self.conn.execute(sql, values or {})

    async def fetch_one(
        self, sql: str, values: Mapping[str, Any] | None = None
    ) -> Sequence[Any] | None:
        row: Sequence[Any] | None = self.conn.execute(sql, values or {}).fetchone()
        return row

    async def fetch_all(
        self, sql: str, values: Mapping[str, Any] | None = None
    ) -> list[Sequence[Any]]:
        return list(self.conn.execute(sql, values or {}).fetchall())

    async def fetch_val(self, sql: str, values: Mapping[str, Any] | None = None) -> Any:
        row = self.conn.execute(sql, values or {}).fetchone()
        return None if row is None else row[0]

    async def execute_many(self, sql: str, values: Sequence[Mapping[str, Any]]) -> None:
        self.conn.executemany(sql, values)


class SqliteEngine(Engine):
    name = "sqlite"
    types: ClassVar[dict[str, str]] = {"pk": "INTEGER PRIMARY KEY", "blob": "BLOB", "unlogged": ""}
    local = True

    def __init__(self, url: str, synchronous: str = "full") -> None:
        super().__init__(url, synchronous)
        self.path = sqlite_path(url)
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._lock: asyncio.Lock | None = None
        self._helper: concurrent.futures.ThreadPoolExecutor | None = None
        self._limits: _SideFile | None = None

    def database_options(self) -> dict[str, Any]:
        return {"factory": _factory(self.synchronous)}

    @staticmethod
    def unavailable(exc: BaseException) -> bool:
        return is_unavailable(exc)

    @staticmethod
    def normalise_url(database_url: str) -> str:
        if not database_url.startswith(("sqlite:///", "sqlite+aiosqlite:///")):
            raise UnknownDatabase("DATABASE_URL: a SQLite URL starts with sqlite:///")
        if "?" in database_url:
            # `databases` would pass the query to sqlite3 as part of the file name.
            raise UnknownDatabase("DATABASE_URL: SQLite URLs take no options after '?'")
        return "sqlite:///" + database_url.partition(":///")[2]

    @staticmethod
    def default_key_file(database_url: str) -> Path:
        """Beside the database file, so the two travel together on one machine."""
        db = sqlite_path(database_url)
        return db.with_name(db.name + ".key")

    def database_missing(self) -> bool:
        return not self.path.exists()

    async def scrub(self) -> None:
        """Reset the WAL to nothing (`wal_checkpoint(TRUNCATE)`): its older frames hold pages as
        they were before rows were deleted (a sent mail's address). Under the write lock, and
        waiting at most `SCRUB_WAIT_MS` for readers, so signatures never queue behind it; a
        reader that holds on makes it a no-op until the next time."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            conn = await self._connection()
            await self._off_loop(self._checkpoint, conn)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        if self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            conn.execute(f"PRAGMA busy_timeout = {SCRUB_WAIT_MS}")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    async def rebuild_files(self) -> None:
        """VACUUM rewrites the file without its free pages; a truncated WAL keeps no old
        frames. On a connection of its own: VACUUM cannot run inside a transaction."""

        def rebuild() -> None:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                for pragma in _pragmas(self.synchronous):
                    conn.execute(pragma)
                conn.execute("VACUUM")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()

        await asyncio.to_thread(rebuild)

    def exposed_files(self) -> list[tuple[Path, int]]:
        return exposed(self.path)

    def limits(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        if self._limits is None:
            self._limits = _SideFile(Path(f"{self.path}-limits"))
        return self._limits.transaction()

    async def close(self) -> None:
        if self._limits is not None:
            self._limits.close()
            self._limits = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._helper is not None:
            self._helper.shutdown()
            self._helper = None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._locked() as conn:
            yield SqliteTransaction(conn, self.sealed_events)

    async def run_plan(self, plan: Plan) -> list[int | None]:
        async with self._locked() as conn:
            row = None
            while True:
                try:
                    statement = plan.send(row)
                except StopIteration as done:
                    return list(done.value)
                if isinstance(statement, Many):
                    conn.executemany(statement.sql, statement.values)
                    row = None
                else:
                    row = conn.execute(*statement).fetchone()

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[sqlite3.Connection]:
        """The write lock, a transaction begun IMMEDIATE (so it never fails half-way for lack
        of the lock), and COMMIT when the block ends."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                conn = await self._connection()
                await self._off_loop(self._begin, conn)
            except BaseException as exc:
                self._reset_after(exc)
                raise
            try:
                yield conn
                await self._off_loop(conn.execute, "COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                self._reset_after(exc)
                raise
            finally:
                if self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _begin(self, conn: sqlite3.Connection) -> None:
        """Take the write lock (in the helper thread: it may wait for another worker)."""
        if self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            raise

    async def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = await self._off_loop(open_sqlite, self.path, self.synchronous)
        return self._conn

    def _reset_after(self, exc: BaseException) -> None:
        """After an I/O error the connection may not recover: start afresh next time."""
        if is_unavailable(exc) and self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    async def _off_loop(self, work: Callable[..., Any], *args: Any) -> Any:
        if self._helper is None:
            self._helper = concurrent.futures.ThreadPoolExecutor(1, "sqlite-write-lock")
        return await asyncio.get_running_loop().run_in_executor(self._helper, work, *args)

    async def lock_for_migration(self, tx: Transaction) -> None:
        """Nothing to add: a write transaction holds the file lock, which every process takes."""

    async def raw_rows(self, conn: Any, sql: str, values: dict[str, Any]) -> AsyncIterator[Any]:
        async with conn.execute(sql, values) as cursor:
            async for row in cursor:
                yield row

    def classify(self, exc: BaseException) -> FailureKind:
        if is_unavailable(exc) or not isinstance(exc, sqlite3.Error):
            return "unavailable"
        return "data"


class _SideFile:
    """The limit store of SQLite: a database file of its own beside the main one, so that the
    workers' flushes never queue behind a group commit nor hold the writer's lock. Counts
    matter for a minute: `synchronous = OFF` (no fsync) and a rollback journal, which leaves
    no old pages behind as a WAL would; `secure_delete` overwrites deleted keys. Workers take
    turns on a file lock of its own (`<file>.lock`): tried without waiting on the loop, and
    waited for on a thread only when another worker's flush (well under a millisecond) holds
    it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._fd: int | None = None
        self._lock = asyncio.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            create_private(os.fspath(self.path))
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in (
                f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
                "PRAGMA journal_mode = TRUNCATE",
                "PRAGMA synchronous = OFF",
                "PRAGMA secure_delete = ON",
            ):
                conn.execute(pragma)
            for statement in TABLES:  # under the file lock: the caller holds it
                conn.execute(statement.format(**SqliteEngine.types))
            self._conn = conn
        return self._conn

    def _lock_fd(self) -> int:
        if self._fd is None:
            self._fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock:
            fd = self._lock_fd()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.get_running_loop().run_in_executor(
                    None, fcntl.flock, fd, fcntl.LOCK_EX
                )
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield SqliteTransaction(conn)
                    conn.execute("COMMIT")
                except BaseException as exc:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    if is_unavailable(exc):
                        self.close()
                    raise
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


ENGINE = SqliteEngine
