"""What the commands share: the parser that never echoes an address, the database flag,
opening the storage, and how a command fails or prints a table."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from server import wiring
from server.domain import access_keys, sealing
from server.domain.errors import StorageUnavailable
from server.domain.petitions import Entry
from server.settings import SETTINGS, Settings, SettingsError, missing_for_confirmation
from server.store.engine import describe, engine_for, normalise_url
from server.store.keying import WrongHashKey
from server.store.sqlite import sqlite_path
from server.store.storage import Storage


class Parser(argparse.ArgumentParser):
    """argparse quotes back what it could not use ("invalid choice: 'x@y'", "unrecognized
    arguments: x@y"), so an address typed on the command line by mistake (`signatures remove
    SLUG --email x@y`) would be printed to the terminal, its scrollback and CI logs. Its
    messages leave out every word with an "@". The subcommands' parsers are of this class too
    (argparse makes them of the root parser's class)."""

    def error(self, message: str) -> NoReturn:
        super().error(without_addresses(message))


_ADDRESS = re.compile(r"\S*@\S*")


def without_addresses(text: str) -> str:
    return _ADDRESS.sub("(an address, not shown)", text)


def database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="database URL (env DATABASE_URL)")


def server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (env HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (env PORT)")
    database_flag(parser)


# The demo's database, named when another is missing: a newcomer who ran the demo and then
# `keys create-owner` as the README shows it wants the demo's, not a new empty one.
DEMO_DATABASE = "sqlite:///petition-widget-demo.db"
CREATORS = "`petitions import`, `serve` and `demo`"
SETTINGS_DEFAULT_URL = SETTINGS["DATABASE_URL"].default


def missing_database(database_url: str) -> str:
    """Why a command that does not create a database cannot run on this URL, or "" when the
    database is there. Connecting to a missing SQLite file would create it, empty: a key made
    there gets 401 on the server that runs on the other file."""
    engine = engine_for(database_url)
    if not engine.database_missing():
        return ""
    demo_url = normalise_url(DEMO_DATABASE)
    where = (
        f"there is no {sqlite_path(database_url)}"
        if database_url.startswith("sqlite")
        else f"there is no database at {database_url}"
    )
    if "DATABASE_URL" not in os.environ and database_url == normalise_url(SETTINGS_DEFAULT_URL):
        where += " (DATABASE_URL is not set, and that is its default, in this directory)"
    lines = [f"{where}; nothing was created: only {CREATORS} create a database."]
    if database_url != demo_url:
        demo_file = sqlite_path(demo_url)
        here = "is here" if demo_file.exists() else "is not here either"
        lines.append(
            f"The demo's database, {demo_file.name}, {here}: to use it, add "
            f"--database-url {DEMO_DATABASE} (or set DATABASE_URL={DEMO_DATABASE})."
        )
    return "\n".join(lines)


def with_storage(
    settings: Settings, work: Callable[[Storage], Awaitable[int]], *, create: bool = False
) -> int:
    """Run `work` on the database, migrated. Only with `create` may it be made here."""
    if not create:
        problem = missing_database(settings.database_url)
        if problem:
            return fail(problem)

    async def run() -> int:
        storage = wiring.storage_for(settings)
        await storage.connect()
        try:
            await storage.migrate(wiring.email_hasher(settings))
            return await work(storage)
        finally:
            await storage.disconnect()

    try:
        return asyncio.run(run())
    except WrongHashKey as exc:
        print(f"petition-widget: {exc}", file=sys.stderr)
    except StorageUnavailable as exc:
        print(f"petition-widget: cannot open the database: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"petition-widget: cannot open the database: {describe(exc)}", file=sys.stderr)
    return 1


def fail(message: str) -> int:
    print(f"petition-widget: {message}", file=sys.stderr)
    return 1


async def new_key(
    storage: Storage,
    role: str,
    label: str,
    petition_id: int | None = None,
    partner_id: int | None = None,
) -> access_keys.Key:
    """A new key, stored as its digest only; the caller shows `key.text` once."""
    key = access_keys.generate(role)
    await storage.add_access_key(
        key.id, role, key.digest, label, petition_id=petition_id, partner_id=partner_id
    )
    return key


def show_key(key: access_keys.Key, settings: Settings) -> None:
    print(f"\n    {key.text}\n")
    print(
        "Shown only this once, and stored only as a digest: put it in a password manager now.\n"
        f"Sign in at {settings.base_url}/admin/login\n"
        f"Revoke it with: petition-widget keys revoke {key.id}"
    )


def mail_problem(entries: Sequence[Entry], settings: Settings) -> str:
    """Why the open petitions that confirm by email could not send their mails, or ""."""
    missing = missing_for_confirmation(settings)
    needing = sorted(e.slug for e in entries if e.is_open and e.petition.needs_confirmation)
    if not (missing and needing):
        return ""
    return (
        f"{', '.join(needing)} confirm{'s' if len(needing) == 1 else ''} signatures by email, "
        f"which needs {', '.join(missing)} (see the README's settings); set "
        f'{"it" if len(missing) == 1 else "them"}, or set [signing] confirmation = "none" '
        "in the petition file and import it again"
    )


def write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [f"{cell!s:<{w}}" for cell, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, str(row[-1])]))


def date(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def read_secret_key(path: Path) -> Any:
    """The secret key in `path`, or SettingsError saying why not (never its content)."""
    try:
        return sealing.parse_secret_key(path.read_text().strip())
    except OSError as exc:
        raise SettingsError(f"cannot read the secret key {path}: {describe(exc)}") from None
    except sealing.BadKey as exc:
        raise SettingsError(f"{path}: {exc}") from None
