"""`seal`: seal a database that holds signer data in clear, in place."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from server import wiring
from server.cli.common import database_flag, fail, with_storage
from server.settings import Settings
from server.store import seal
from server.store.storage import Storage


def add_commands(commands: Any) -> None:
    seal_command = commands.add_parser(
        "seal", help="seal the signer data a database holds in clear (SEALING_PUBLIC_KEY)"
    )
    database_flag(seal_command)
    seal_command.set_defaults(run=_seal)


def _seal(args: argparse.Namespace, settings: Settings) -> int:
    """Seal a plaintext database in place: resumable, idempotent, then its files rebuilt."""
    hasher = wiring.email_hasher(settings)
    if not settings.sealing_public_key:
        return fail("SEALING_PUBLIC_KEY is not set (make a pair: keys create-sealing)")
    if hasher is None:
        return fail("EMAIL_HASH_KEY is not set: sealed rows keep a keyed hash of their domain")

    def report(progress: seal.Progress) -> None:
        share = progress.done / progress.total if progress.total else 1.0
        bar = "#" * int(share * 30)
        print(f"\rsealing [{bar:<30}] {progress.done:,}/{progress.total:,}", end="",
              file=sys.stderr, flush=True)  # fmt: skip

    async def work(storage: Storage) -> int:
        done = await seal.seal_database(storage, settings.sealing_public_key, hasher, report)
        print(file=sys.stderr)
        arriving = await seal.left(storage)
        if arriving:
            return fail(
                f"{arriving:,} row(s) arrived in clear while sealing: a server still runs "
                "without SEALING_PUBLIC_KEY. Restart it with the key, then run seal again."
            )
        print(
            f"Sealed {done:,} row(s); the database's files were rebuilt without the plaintext. "
            "Backups, WAL archives and replicas made before keep it until they expire."
        )
        return 0

    return with_storage(settings, work)
