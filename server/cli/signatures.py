"""`signatures`: what an owner does to single signatures by hand."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from server import wiring
from server.cli.common import database_flag, fail, with_storage, without_addresses
from server.domain.validation import FieldErrors, validate_signer
from server.settings import Settings
from server.store import confirmations
from server.store.storage import Storage


def add_commands(commands: Any) -> None:
    group = commands.add_parser("signatures", help="remove a signer who asks by other means")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    remove = actions.add_parser(
        "remove",
        help="remove an address's signature from a petition; the address is read from a "
        "prompt, or from standard input with --email - (never from the command line)",
    )
    remove.add_argument("petition", metavar="SLUG")
    remove.add_argument(
        "--email",
        choices=["-"],
        help="read the address from standard input instead of a prompt",
    )
    database_flag(remove)
    remove.set_defaults(run=_remove_signer)


def _remove_signer(args: argparse.Namespace, settings: Settings) -> int:
    """A signer asked, by mail or in person, to be removed. The address never appears on the
    command line (shell history, process lists) and is never printed or logged."""
    if args.email == "-":
        address = sys.stdin.readline()
    else:
        try:
            address = input("Email address to remove: ")
        except EOFError:
            address = ""
    hasher = wiring.email_hasher(settings)
    if hasher is None:
        return fail("EMAIL_HASH_KEY is not set: signatures are found by its keyed hash")
    try:
        key = hasher.email_key(validate_signer({"name": "-", "email": address}).email_key)
    except FieldErrors:
        return fail("that is not a valid email address")

    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        if petition_id is None:
            # An address typed where the slug goes is not printed back either.
            slug = without_addresses(args.petition)
            return fail(f"no petition '{slug}' (see: petition-widget petitions list)")
        counted, waiting = await confirmations.remove_signer(
            storage, petition_id, key, hasher.mail_tag(key)
        )
        await storage.engine.scrub()  # the removed rows leave the files too (WAL, dead rows)
        if not (counted or waiting):
            print(f"No signature of that address on {args.petition}.")
            return 0
        print(
            f"Removed from {args.petition}: {counted} counted signature(s) and "
            f"{waiting} waiting for confirmation, with their personal data."
        )
        return 0

    return with_storage(settings, work)
