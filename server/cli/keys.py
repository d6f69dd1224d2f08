"""`keys`: owner keys for the dashboard, and key pairs for sealed signer data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from server.cli.common import (
    database_flag,
    date,
    fail,
    new_key,
    print_table,
    show_key,
    with_storage,
    write_private,
)
from server.domain import access_keys, sealing
from server.settings import Settings
from server.store.engine import describe
from server.store.storage import Storage

SEALING_KEY_FILE = Path("petition-widget-sealing.secret")


def add_commands(commands: Any) -> None:
    group = commands.add_parser("keys", help="owner keys for the dashboard: create, list, revoke")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create-owner", help="a new owner key, shown once (for every petition, or one)"
    )
    create.add_argument("--petition", metavar="SLUG", help="only this petition (default: all)")
    create.add_argument("--label", default="", help="what the key is for, e.g. who holds it")
    create.add_argument("--base-url", help="public URL of this server (env BASE_URL)")
    database_flag(create)
    create.set_defaults(run=_create_owner)
    listed = actions.add_parser("list", help="every key: id, role, scope, label, state")
    database_flag(listed)
    listed.set_defaults(run=_list_keys)
    sealing_keys = actions.add_parser(
        "create-sealing",
        help="a key pair for sealed signer data: the secret to a file (0600), the public shown",
    )
    sealing_keys.add_argument(
        "--out", type=Path, metavar="FILE",
        help=f"where the secret key goes (default: {SEALING_KEY_FILE}); never overwritten",
    )  # fmt: skip
    sealing_keys.set_defaults(run=_create_sealing, database="none", offline=True)
    revoke = actions.add_parser("revoke", help="revoke a key at once, owner's or partner's")
    revoke.add_argument("key", metavar="KEY", help="the key's id (or the whole key)")
    database_flag(revoke)
    revoke.set_defaults(run=_revoke)


def _create_owner(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        petition_id = None
        if args.petition:
            petition_id = await storage.petition_id(args.petition)
            if petition_id is None:
                return fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
        key = await new_key(storage, access_keys.OWNER, args.label.strip(), petition_id)
        scope = f"petition '{args.petition}'" if args.petition else "every petition"
        print(f"New owner key {key.id} for {scope}:")
        show_key(key, settings)
        return 0

    return with_storage(settings, work)


def _list_keys(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        rows = await storage.access_keys()
        if not rows:
            print("No keys yet: petition-widget keys create-owner")
            return 0
        table = []
        for r in rows:
            scope = r.petition_slug or "every petition"
            if r.partner_code:
                scope += f" / {r.partner_code}"
            state = "active" if r.revoked_at is None else f"revoked {date(r.revoked_at)}"
            table.append((r.id, r.role, scope, date(r.created_at), state, r.label))
        print_table(("ID", "ROLE", "SCOPE", "CREATED", "STATE", "LABEL"), table)
        return 0

    return with_storage(settings, work)


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    key_id = access_keys.key_id(args.key)
    if key_id is None:
        return fail("that is neither a key nor a key id (see: petition-widget keys list)")

    async def work(storage: Storage) -> int:
        row = await storage.access_key(key_id)
        if row is None:
            return fail(f"no key {key_id} (see: petition-widget keys list)")
        if not await storage.revoke_access_key(key_id):
            print(f"Key {key_id} was already revoked.")
            return 0
        print(f"Revoked key {key_id}: it stops working on every server at its next request.")
        return 0

    return with_storage(settings, work)


def _create_sealing(args: argparse.Namespace, settings: Settings) -> int:
    """A key pair: the secret goes to a file of its own (0600, never overwritten), for the
    owner to keep off the server; only the public key is printed."""
    path: Path = args.out or SEALING_KEY_FILE
    public, secret = sealing.new_key_pair()
    try:
        write_private(path, secret + "\n", exclusive=True)
    except FileExistsError:
        return fail(f"{path} exists: choose another file with --out (a key is never replaced)")
    except OSError as exc:
        return fail(f"cannot write {path}: {describe(exc)}")
    print(f"Secret key written to {path} (mode 0600). Keep it OFF this server: make two offline")
    print("copies (e.g. two USB sticks in different places), then delete it here. Whoever holds")
    print("it can read every sealed signer; without it, nobody can, including you.\n")
    print("Public key, for the server:\n")
    print(f"    SEALING_PUBLIC_KEY={public}\n")
    print("Open an export with: petition-widget export-open FILE --secret-key SECRET_FILE")
    return 0
