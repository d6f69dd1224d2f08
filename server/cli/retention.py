"""`retention run`: by hand, what the hourly retention job does."""

from __future__ import annotations

import argparse
import time
from typing import Any

from server.cli.common import database_flag, with_storage
from server.domain import export
from server.settings import Settings
from server.store import retention
from server.store.storage import Storage


def add_commands(commands: Any) -> None:
    group = commands.add_parser(
        "retention", help="delete signer data of petitions closed longer than [retention] days"
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="do now what the background job does every hour")
    run.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    database_flag(run)
    run.set_defaults(run=_retention)


def _retention(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        entries = await storage.petitions()
        found = await retention.due(storage, entries, time.time())
        if not found:
            print("Nothing to delete: no closed petition is past its [retention] days.")
            return 0
        for petition in found:
            print(
                f"{petition.slug}: closed {export.iso(petition.closed_at)}; "
                f"{petition.signatures:,} signature(s) with personal data, "
                f"{petition.pending:,} waiting for confirmation"
            )
        if args.dry_run:
            print("Dry run: nothing deleted. Counts and charts will stay as they are.")
            return 0
        for petition in found:
            await retention.retain(storage, petition.petition_id)
        await storage.engine.scrub()  # what was deleted leaves the files too (WAL, dead rows)
        print("Deleted that personal data; counts, charts and totals are unchanged.")
        return 0

    return with_storage(settings, work)
