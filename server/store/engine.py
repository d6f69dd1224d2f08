"""The engine adapter: what differs between SQLite and PostgreSQL, behind one small interface.

Everything engine-specific lives in an adapter (`sqlite.py`, `postgres.py`): how the `databases`
pool is configured, how a write transaction is opened and serialised (the write path), how
parameters reach the driver, how the hot path's statements run on the raw driver, and which
errors mean "the database cannot be used right now". The rest of the store (`storage.py`,
`writer.py`, `outbox.py`) writes standard SQL once and asks its adapter for the rest: adding
an engine is one adapter file plus its tests.

Every write goes through `Engine.transaction()`, the one write path: CLI and dashboard
changes, outbox rows and claims, purges and the group commit of signatures alike.
"""

from __future__ import annotations

import abc
import contextlib
import importlib
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, Protocol

import databases

from server.domain.errors import PetitionWidgetError, StorageUnavailable
from server.domain.sealing import EmailHasher

#: A statement and its named (`:name`) values.
Statement = tuple[str, dict[str, Any]]


class Many(NamedTuple):
    """One statement run once for each of its value sets (the driver's `executemany`): rows a
    plan adds and never reads back, in one call instead of a round trip each."""

    sql: str
    values: list[dict[str, Any]]


#: A sequence of statements that receives each statement's first row (None after a `Many`) and
#: returns a value: the shape of the signing hot path, run by each adapter on its raw driver
#: (`Engine.run_plan`).
Plan = Generator[Statement | Many, Any, list[int | None]]
#: What a failed write means: try the same again, the database cannot be used now, or
#: something in the data itself was refused.
FailureKind = Literal["retry", "unavailable", "data"]


class Transaction(Protocol):
    """A write transaction: statements with `:name` parameters; rows index by position."""

    # On a sealed server, the key webhook events are encrypted under in the outbox (the
    # engine's `sealed_events`, given to each of its transactions); None: they are kept in clear.
    sealed_events: EmailHasher | None

    async def execute(self, sql: str, values: Mapping[str, Any] | None = None) -> None: ...

    async def fetch_one(
        self, sql: str, values: Mapping[str, Any] | None = None
    ) -> Sequence[Any] | None: ...

    async def fetch_all(
        self, sql: str, values: Mapping[str, Any] | None = None
    ) -> list[Sequence[Any]]: ...

    async def fetch_val(self, sql: str, values: Mapping[str, Any] | None = None) -> Any: ...

    async def execute_many(self, sql: str, values: Sequence[Mapping[str, Any]]) -> None: ...


class Engine(abc.ABC):
    name: ClassVar[str]
    #: Type names filled into the schema's statements (`{pk}`).
    types: ClassVar[dict[str, str]]
    #: Signature groups that may commit at once, and the counter shards they spread over.
    writer_concurrency: ClassVar[int] = 1
    shards: ClassVar[int] = 1
    #: What a claim query appends to lock the rows it picks without waiting for other claimers.
    skip_locked: ClassVar[str] = ""
    #: Whether one machine holds the whole database (SQLite): a key the workers must share can
    #: then be generated and kept beside it; a server that several hosts use needs it given.
    local: ClassVar[bool] = False
    #: Set by `Storage` on a sealed server (see `Transaction.sealed_events`); None by default.
    sealed_events: EmailHasher | None = None

    def __init__(self, url: str, synchronous: str = "full") -> None:
        self.url = url
        self.synchronous = synchronous
        self.database = databases.Database(url, **self.database_options())

    @abc.abstractmethod
    def database_options(self) -> dict[str, Any]:
        """Keyword arguments for `databases.Database`."""

    @abc.abstractmethod
    async def rebuild_files(self) -> None:
        """Rewrite the database's files so that deleted rows leave no trace in them (after
        `seal` has emptied the plaintext columns)."""

    async def scrub(self) -> None:
        """Clear what the engine keeps of deleted rows, where it can do so cheaply (SQLite's WAL,
        PostgreSQL's dead outbox rows); called when the outbox has drained, and after the purge
        and retention jobs deleted personal data. Nothing by default."""
        return None

    def database_missing(self) -> bool:
        """Whether connecting would create the database rather than open one (SQLite's file):
        commands that only read refuse then."""
        return False

    @abc.abstractmethod
    async def close(self) -> None:
        """Release what the write path holds (connections, locks, threads)."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """A write transaction, committed when the block ends and rolled back if it raises."""

    @abc.abstractmethod
    def limits(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """A transaction on the scratch store of rate limits (`limits.py`), its tables made on
        first use: never the signatures' write lock, and nothing in it needs to survive a
        crash."""

    @abc.abstractmethod
    async def run_plan(self, plan: Plan) -> list[int | None]:
        """Run a plan's statements in one write transaction on the raw driver (the hot path)."""

    @abc.abstractmethod
    async def lock_for_migration(self, tx: Transaction) -> None:
        """Keep other hosts from migrating at the same time, until `tx` ends."""

    @abc.abstractmethod
    def raw_rows(self, conn: Any, sql: str, values: dict[str, Any]) -> AsyncIterator[Any]:
        """Rows as the driver gives them, read through a cursor on a `databases` connection's
        raw connection: `databases`' own row objects cost more than an export's whole work."""

    @abc.abstractmethod
    def classify(self, exc: BaseException) -> FailureKind:
        """What a failed write means (see `FailureKind`)."""

    def is_unavailable(self, exc: BaseException) -> bool:
        """Whether an error means the database cannot be used right now (down, unreachable,
        hung, locked, full, read-only), as opposed to a bug or a refused row."""
        return is_unavailable(exc)

    @staticmethod
    @abc.abstractmethod
    def unavailable(exc: BaseException) -> bool:
        """This engine's own test for `is_unavailable`: its driver's errors."""

    @staticmethod
    def normalise_url(database_url: str) -> str:
        """The URL as this engine's driver wants it; `UnknownDatabase` when it cannot use it."""
        return database_url

    @staticmethod
    def default_key_file(database_url: str) -> Path:
        """Where a generated secret key is kept when `SECRET_KEY_FILE` is unset."""
        return Path("petition-widget.key")

    def exposed_files(self) -> list[tuple[Path, int]]:
        """The database's own files on this machine that group or others may read or write,
        with their modes (`serve` warns of them). None by default: a database server guards
        its own files."""
        return []


class UnknownDatabase(PetitionWidgetError):
    """A `DATABASE_URL` that names no engine we have, or that its engine cannot use."""


class Engines:
    """The engines we have, by URL scheme: adding one is its adapter module and a line here."""

    #: scheme -> the adapter's module (imported when used: a SQLite-only run never loads asyncpg)
    MODULES: ClassVar[dict[str, str]] = {
        "sqlite": "server.store.sqlite",
        "postgresql": "server.store.postgres",
    }

    @classmethod
    def adapter(cls, database_url: str) -> type[Engine]:
        scheme = database_url.partition(":")[0].partition("+")[0]
        if scheme not in cls.MODULES:
            known = ", ".join(f"{name}://" for name in cls.MODULES)
            raise UnknownDatabase(f"DATABASE_URL must start with one of {known}")
        adapter: type[Engine] = importlib.import_module(cls.MODULES[scheme]).ENGINE
        return adapter

    @classmethod
    def all(cls) -> list[type[Engine]]:
        return [importlib.import_module(m).ENGINE for m in cls.MODULES.values()]


def normalise_url(database_url: str) -> str:
    """A `DATABASE_URL` as its adapter wants it, or `UnknownDatabase` saying why not."""
    if database_url.startswith("postgres://"):  # the spelling some hosting platforms hand out
        database_url = "postgresql://" + database_url.removeprefix("postgres://")
    return Engines.adapter(database_url).normalise_url(database_url)


def kind_of(database_url: str) -> str:
    """The name of the engine a `DATABASE_URL` names."""
    return Engines.adapter(database_url).name


def engine_for(database_url: str, synchronous: str = "full") -> Engine:
    """The adapter for a database URL."""
    return Engines.adapter(database_url)(database_url, synchronous)


def is_local(database_url: str) -> bool:
    """Whether the engine keeps its whole database on this machine (see `Engine.local`)."""
    return Engines.adapter(database_url).local


def default_key_file(database_url: str) -> Path:
    """Where a generated secret key is kept by default for this database (see settings)."""
    return Engines.adapter(database_url).default_key_file(database_url)


def is_unavailable(exc: BaseException) -> bool:
    """`Engine.is_unavailable` for any engine: the app's error handler knows no engine."""
    if isinstance(exc, StorageUnavailable):  # ours, raised where a driver's error was caught
        return True
    return any(adapter.unavailable(exc) for adapter in Engines.all())


def describe(exc: BaseException) -> str:
    """An exception's kind, for logs and health checks, without its message: database errors
    can quote the values of a failed row, and those may be a signer's email."""
    code = getattr(exc, "sqlstate", None) or getattr(exc, "sqlite_errorname", None)
    return f"{type(exc).__name__} ({code})" if code else type(exc).__name__
