"""`delivery`: the pack handed to a petition's target, a PDF and a CSV, made on the owner's
machine from the database (read, never created nor migrated), with the secret key when signer
data is sealed. Only the signers who chose to be named are listed; partners only on request."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from server.cli.common import database_flag, fail, missing_database, read_secret_key
from server.domain import delivery_pdf, sealing
from server.domain.delivery import Pack, csv_text
from server.domain.errors import StorageUnavailable
from server.settings import Settings, SettingsError
from server.store import delivery
from server.store.engine import describe
from server.store.storage import Storage


def add_commands(commands: Any) -> None:
    made = commands.add_parser(
        "delivery",
        help="the delivery pack for the petition's target: DIR/SLUG-delivery.pdf and .csv",
    )
    made.add_argument("petition", metavar="SLUG")
    made.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write")
    made.add_argument("--lang", metavar="LL", help="a language of the petition (default: its own)")
    made.add_argument(
        "--secret-key",
        type=Path,
        metavar="FILE",
        help="the owner's secret key file: needed for the names when signer data is sealed",
    )
    made.add_argument(
        "--with-partners",
        action="store_true",
        help="also the totals by partner, naming the partners (left out by default: a pack "
        "handed to a hostile government should not list the NGOs that collected it)",
    )
    database_flag(made)
    # Offline: it reads an existing database (never creates nor migrates it) and makes no key.
    made.set_defaults(run=_delivery, database="existing", offline=True)


def _delivery(args: argparse.Namespace, settings: Settings) -> int:
    secret = None
    if args.secret_key is not None:
        try:
            secret = read_secret_key(args.secret_key)
        except SettingsError as exc:
            return fail(str(exc))
    try:
        fonts = delivery_pdf.Fonts.find()
    except delivery_pdf.MissingFonts as exc:
        return fail(str(exc))

    async def run() -> Pack | int:
        problem = missing_database(settings.database_url)
        if problem:
            return fail(problem)
        storage = Storage(settings.database_url, synchronous=settings.sqlite_synchronous)
        await storage.connect()
        try:
            entries = {e.slug: e for e in await storage.petitions(await storage.partners())}
            entry = entries.get(args.petition)
            if entry is None:
                return fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
            languages = entry.petition.languages
            if args.lang is not None and args.lang not in languages:
                return fail(
                    f"'{args.petition}' has no texts in '{args.lang}' (it has: "
                    f"{', '.join(languages)})"
                )
            return await delivery.pack(
                storage,
                entry,
                lang=args.lang or entry.petition.lang,
                with_names=True,
                with_partners=args.with_partners,
                secret=secret,
            )
        finally:
            await storage.disconnect()

    try:
        made = asyncio.run(run())
    except delivery.NamesSealed as exc:
        return fail(str(exc))
    except sealing.BadKey as exc:
        return fail(f"{exc} (is it the key of this petition's SEALING_PUBLIC_KEY?)")
    except (StorageUnavailable, OSError) as exc:
        return fail(f"cannot read the database: {describe(exc)}")
    if isinstance(made, int):
        return made
    try:
        pdf = delivery_pdf.render(made, fonts)
    except delivery_pdf.MissingGlyphs as exc:
        return fail(str(exc))
    try:
        paths = _write(args.out, made, pdf)
    except OSError as exc:
        return fail(f"cannot write to {args.out}: {describe(exc)}")
    named = len(made.names or ())
    print(
        f"Wrote {paths[0]} and {paths[1]}: {made.total} signatures, {named} of them named "
        f"(signers who chose to be on the list){', with partners' if made.by_partner else ''}."
    )
    if named:
        print("They hold names (mode 0600): hand them over, and keep no copies you do not need.")
    return 0


def _write(folder: Path, made: Pack, pdf: bytes) -> tuple[Path, Path]:
    """Both files, created 0600 when they hold names (0644 otherwise), replacing older ones."""
    folder.mkdir(parents=True, exist_ok=True)
    mode = 0o600 if made.names else 0o644
    paths = (folder / f"{made.slug}-delivery.pdf", folder / f"{made.slug}-delivery.csv")
    for path, data in zip(paths, (pdf, csv_text(made).encode()), strict=True):
        path.unlink(missing_ok=True)  # a new file gets `mode`; an old one would keep its own
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, mode)  # whatever the umask
    return paths
