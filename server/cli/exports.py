"""`export` and `export-open`: signer data opened on the owner's machine with the secret key,
from the database or from a sealed export downloaded from the dashboard."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from server.cli.common import database_flag, fail, missing_database, read_secret_key
from server.domain import export, sealing
from server.domain.errors import StorageUnavailable
from server.domain.export import ExportRow
from server.settings import Settings, SettingsError
from server.store.engine import describe
from server.store.storage import Storage
from server.web import spreadsheet


def add_commands(commands: Any) -> None:
    formats = (*export.FORMATS, "xlsx")
    out = commands.add_parser(
        "export",
        help="a petition's signers, read from the database and opened here with the secret key "
        "(a SQLite file, or a PostgreSQL server it connects to; it creates neither)",
    )
    out.add_argument("petition", metavar="SLUG")
    out.add_argument(
        "--secret-key",
        type=Path,
        required=True,
        metavar="FILE",
        help="the owner's (or, with --partner, the partner's) secret key file",
    )
    out.add_argument("--partner", metavar="CODE", help="only this partner's consenting signers")
    out.add_argument("--format", choices=formats, default="csv", help="csv (default), json or xlsx")
    out.add_argument("--bom", action="store_true", help="CSV with a byte order mark (Excel)")
    out.add_argument("--out", type=Path, metavar="FILE", help="write here (mode 0600), not stdout")
    database_flag(out)
    out.set_defaults(run=_export, offline=True)
    opened = commands.add_parser(
        "export-open", help="open a sealed export downloaded from the dashboard, offline"
    )
    opened.add_argument("file", type=Path, metavar="FILE", help="the .sealed file")
    opened.add_argument("--secret-key", type=Path, required=True, metavar="FILE")
    opened.add_argument(
        "--format", choices=formats, default="csv", help="csv (default), json or xlsx"
    )
    opened.add_argument("--bom", action="store_true", help="CSV with a byte order mark (Excel)")
    opened.add_argument("--out", type=Path, metavar="FILE", help="write here (mode 0600)")
    opened.set_defaults(run=_export_open, database="none", offline=True)  # fmt: skip


async def _write_rows(
    rows: AsyncIterator[ExportRow], columns: Sequence[str], args: argparse.Namespace
) -> None:
    """Rows as CSV, JSON or XLSX, to `--out` (created 0600: it holds personal data) or
    stdout."""
    if args.format == "xlsx":
        if args.out is not None:
            os.close(_private(args.out))
            await spreadsheet.write(rows, columns, str(args.out))
            return
        async for chunk in spreadsheet.chunks(rows, columns):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    _, produce = export.FORMATS[args.format]
    chunks = (
        produce(rows, columns, bom=args.bom) if args.format == "csv" else produce(rows, columns)
    )
    if args.out is None:
        async for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    with os.fdopen(_private(args.out), "wb") as f:
        async for chunk in chunks:
            f.write(chunk)


def _private(path: Path) -> int:
    """`path` opened for writing, emptied, with mode 0600: also when it existed with another
    mode (the mode given to `open` applies only to a file it creates)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _export(args: argparse.Namespace, settings: Settings) -> int:
    """Read the database (no server needed, and none created) and open its sealed rows here."""
    try:
        secret = read_secret_key(args.secret_key)
    except SettingsError as exc:
        return fail(str(exc))

    async def run() -> int:
        storage = Storage(settings.database_url, synchronous=settings.sqlite_synchronous)
        problem = missing_database(settings.database_url)
        if problem:
            return fail(problem)
        await storage.connect()
        try:
            petition_id = await storage.petition_id(args.petition)
            if petition_id is None:
                return fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
            partner = None
            if args.partner:
                partner = await storage.partner(petition_id, args.partner)
                if partner is None:
                    return fail(f"no partner '{args.partner}' on '{args.petition}'")
            # The owner's key opens the owner's boxes; a partner's key its copies.
            own = partner is not None and partner.public_key == sealing.encode_key(
                secret.public_key
            )
            if partner is not None and not own:
                # A key the partner had before `set-sealing-key` opens the copies made then.
                own = await _opens_a_copy(storage, petition_id, partner.id, secret)
            stored = storage.export_rows(
                petition_id, partner.id if partner else None, partner_box=own
            )
            columns = export.PARTNER_COLUMNS if partner else export.OWNER_COLUMNS

            tally = _Unopened()

            async def opened() -> AsyncIterator[ExportRow]:
                async for row in stored:
                    found = tally.open(export.open_row, row, secret)
                    if found is not None:
                        yield found

            await _write_rows(opened(), columns, args)
            return tally.report()
        finally:
            await storage.disconnect()

    try:
        return asyncio.run(run())
    except sealing.BadKey as exc:
        return fail(f"{exc} (is it the key of this petition's SEALING_PUBLIC_KEY?)")
    except (StorageUnavailable, OSError) as exc:
        return fail(f"cannot read the database: {describe(exc)}")


async def _opens_a_copy(storage: Storage, petition_id: int, partner_id: int, secret: Any) -> bool:
    """Whether `secret` opens any of this partner's copies (an earlier key of the partner's),
    rather than being the owner's key."""
    found = False
    # Read to the end rather than leave the generator (and its reader task) half-way.
    async for row in storage.export_rows(petition_id, partner_id, partner_box=True):
        if found or row.sealed is None:
            continue
        try:
            export.open_row(row, secret)
            found = True
        except sealing.BadKey:
            continue
    return found


class _Unopened:
    """Rows whose box this key does not open. A partner whose key was replaced
    (`partners set-sealing-key`) has copies sealed for each key: either key opens its own, and
    the others are counted and said, not fatal. When no row at all opens, the key is wrong:
    `sealing.BadKey`, as before."""

    def __init__(self) -> None:
        self.opened = self.skipped = 0

    def open(self, opening: Callable[..., ExportRow], *args: Any) -> ExportRow | None:
        try:
            row = opening(*args)
        except sealing.BadKey:
            self.skipped += 1
            return None
        self.opened += 1
        return row

    def report(self) -> int:
        if self.skipped and not self.opened:
            raise sealing.BadKey("this secret key does not open the sealed data")
        if self.skipped:
            print(
                f"petition-widget: {self.skipped} row(s) are sealed for another key (a partner's "
                "key replaced with set-sealing-key?) and are left out; open them with that key",
                file=sys.stderr,
            )
        return 0


def _export_open(args: argparse.Namespace, settings: Settings) -> int:
    """Open a sealed export offline: no database, no server, nothing but the file and the key."""
    try:
        secret = read_secret_key(args.secret_key)
    except SettingsError as exc:
        return fail(str(exc))

    async def run() -> int:
        with args.file.open(encoding="utf-8") as f:
            header = export.sealed_header(f.readline())
            columns = header.get("columns") or export.OWNER_COLUMNS
            if not set(columns) <= set(export.OWNER_COLUMNS):
                raise export.BadExport("the sealed export names columns we do not know")

            tally = _Unopened()

            async def opened() -> AsyncIterator[ExportRow]:
                for line in f:
                    if line.strip():
                        found = tally.open(export.open_line, line, secret)
                        if found is not None:
                            yield found

            await _write_rows(opened(), columns, args)
        return tally.report()

    try:
        return asyncio.run(run())
    except sealing.BadKey as exc:
        return fail(f"{exc} (the export says whose key it needs: its first line)")
    except export.BadExport as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot read {args.file}: {describe(exc)}")
