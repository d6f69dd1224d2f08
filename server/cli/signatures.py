"""`signatures`: what an owner does to signatures by hand: remove one signer who asks, and
invalidate or restore many at once (`store/moderation`)."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from typing import Any

from server import wiring
from server.cli.common import database_flag, fail, with_storage, without_addresses
from server.domain import abuse, i18n
from server.domain.validation import FieldErrors, validate_signer
from server.settings import Settings
from server.store import confirmations, moderation
from server.store.storage import Storage


def add_commands(commands: Any) -> None:
    group = commands.add_parser(
        "signatures", help="remove a signer who asks; invalidate or restore signatures in bulk"
    )
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
    for action, says in (
        (abuse.INVALIDATE, "take signatures off the count (kept, so they can be restored)"),
        (abuse.RESTORE, "count quarantined or invalidated signatures again"),
    ):
        bulk = actions.add_parser(action, help=f"{says}, by partner, time, email domain or state")
        bulk.add_argument("petition", metavar="SLUG")
        bulk.add_argument("--partner", metavar="CODE", default="", help="through this partner")
        bulk.add_argument(
            "--from", dest="since", metavar="T", default="",
            help="made at or after T (ISO 8601: 2026-12-01, 2026-12-01T14:00, +02:00 allowed; "
            "UTC unless it says otherwise)",
        )  # fmt: skip
        bulk.add_argument(
            "--until", metavar="T", default="",
            help="made before T (a date alone takes in that whole day)",
        )  # fmt: skip
        bulk.add_argument(
            "--domain", metavar="D", default="",
            help="from addresses at this email domain (matched through its keyed hash)",
        )  # fmt: skip
        bulk.add_argument("--quarantined", action="store_true", help="only quarantined ones")
        bulk.add_argument("--dry-run", action="store_true", help="say how many; change nothing")
        database_flag(bulk)
        bulk.set_defaults(run=functools.partial(_bulk, action))


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


#: The flag each selection field comes from, for its error message.
_FLAGS = {"partner": "--partner", "from": "--from", "until": "--until", "domain": "--domain",
          "selection": "--partner, --from, --until, --domain or --quarantined"}  # fmt: skip


def _bulk(action: str, args: argparse.Namespace, settings: Settings) -> int:
    """Invalidate or restore the signatures a selection names (`--dry-run`: only count them).
    Nothing selected is refused: an action over a whole petition is never a default."""
    try:
        selection = abuse.select(
            partner=args.partner, since=args.since, until=args.until, domain=args.domain,
            quarantined=args.quarantined, hasher=wiring.email_hasher(settings),
        )  # fmt: skip
    except abuse.BadSelection as bad:
        english = i18n.catalog(i18n.DEFAULT_LANGUAGE)
        return fail(f"{_FLAGS[bad.field]}: {english.admin(bad.key)}")

    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        if petition_id is None:
            slug = without_addresses(args.petition)
            return fail(f"no petition '{slug}' (see: petition-widget petitions list)")
        if args.dry_run:
            tally = await moderation.preview(storage, petition_id, selection, action)
            print(
                f"Would {action} on {args.petition}: {tally.signatures} signature(s) and "
                f"{tally.pending} waiting for confirmation. Nothing was changed (--dry-run)."
            )
            return 0
        tally = await moderation.apply(storage, petition_id, selection, action, int(time.time()))
        done = "Invalidated" if action == abuse.INVALIDATE else "Restored"
        total = (await storage.totals()).get(petition_id, 0)
        print(
            f"{done} on {args.petition}: {tally.signatures} signature(s) and {tally.pending} "
            f"waiting for confirmation. It now counts {total}."
        )
        return 0

    return with_storage(settings, work)
