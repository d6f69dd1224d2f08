"""`petitions import` and `petitions list`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server.cli.common import database_flag, mail_problem, with_storage
from server.domain.petitions import Petition, PetitionFileError, load_file
from server.settings import Settings
from server.store.storage import Storage


def add_commands(commands: Any) -> None:
    petitions = commands.add_parser("petitions", help="import and list petitions")
    petition_commands = petitions.add_subparsers(dest="action", metavar="ACTION", required=True)
    do_import = petition_commands.add_parser(
        "import", help="create or update petitions from TOML files (all or nothing)"
    )
    do_import.add_argument("files", nargs="+", type=Path, metavar="FILE")
    database_flag(do_import)
    do_import.set_defaults(run=_import, database="create")
    do_list = petition_commands.add_parser("list", help="slug, title, count and goal of each")
    database_flag(do_list)
    do_list.set_defaults(run=_list)


def read_petitions(paths: Sequence[Path]) -> list[Petition]:
    """Every file checked before anything is written; a slug in two files is an error."""
    petitions: list[Petition] = []
    seen: dict[str, Path] = {}
    for path in paths:
        petition = load_file(path)
        if petition.slug in seen:
            raise PetitionFileError(
                str(path), f"slug '{petition.slug}' is also used by {seen[petition.slug]}"
            )
        seen[petition.slug] = path
        petitions.append(petition)
    return petitions


def _import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        petitions = read_petitions(args.files)
    except PetitionFileError as exc:
        print(f"petition-widget: {exc}", file=sys.stderr)
        return 1

    async def work(storage: Storage) -> int:
        outcome = await storage.import_petitions(petitions)
        for slug, what in outcome.items():
            print(f"{slug}: {what}")
        problem = mail_problem(await storage.petitions(), settings)
        if problem:
            print(f"petition-widget: warning: {problem}", file=sys.stderr)
        return 0

    return with_storage(settings, work, create=True)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        totals = await storage.totals()
        rows = [
            (r.slug, r.petition.in_language(r.petition.lang).title, totals.get(r.id, 0), r.goal)
            for r in await storage.petitions()
        ]
        if not rows:
            print("No petitions yet: petition-widget petitions import FILE.toml")
            return 0
        width = max(len(r[0]) for r in rows)
        print(f"{'SLUG':<{width}}  {'SIGNATURES':>10}  {'GOAL':>10}  TITLE")
        for slug, title, count, goal in rows:
            print(f"{slug:<{width}}  {count:>10,}  {goal:>10,}  {title}")
        return 0

    return with_storage(settings, work)
