"""`partners`: add a partner (its snippet and key), list them, a new key, a sealing key."""

from __future__ import annotations

import argparse
from typing import Any

from server.cli.common import database_flag, fail, new_key, show_key, with_storage
from server.domain import access_keys, sealing, snippet
from server.domain.errors import Conflict
from server.domain.partners import CODE, code_from_name
from server.settings import Settings
from server.store.storage import Storage
from server.web import widget


def add_commands(commands: Any) -> None:
    group = commands.add_parser("partners", help="partner organisations: add, list, new key")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="add a partner to a petition; prints its snippet and access key"
    )
    add.add_argument("petition", metavar="SLUG", help="the petition")
    add.add_argument("--name", required=True, help='the partner\'s name, e.g. "Open Doors"')
    add.add_argument("--code", help="its partner code (default: made from the name)")
    add.add_argument(
        "--public-key", metavar="KEY", help="the partner's sealing public key (base64)"
    )
    add.add_argument("--base-url", help="public URL of this server (env BASE_URL)")
    database_flag(add)
    add.set_defaults(run=_add_partner)
    listed = actions.add_parser("list", help="partners with their counts and keys")
    listed.add_argument("petition", metavar="SLUG", nargs="?", help="only this petition")
    database_flag(listed)
    listed.set_defaults(run=_list_partners)
    key = actions.add_parser(
        "key", help="a new access key for a partner (a lost one: revoke it with keys revoke)"
    )
    key.add_argument("petition", metavar="SLUG")
    key.add_argument("code", metavar="CODE")
    key.add_argument("--base-url", help="public URL of this server (env BASE_URL)")
    database_flag(key)
    key.set_defaults(run=_partner_key)
    sealing_key = actions.add_parser(
        "set-sealing-key",
        help="seal this partner's consenting signers for its key from now on (not earlier ones)",
    )
    sealing_key.add_argument("petition", metavar="SLUG")
    sealing_key.add_argument("code", metavar="CODE")
    sealing_key.add_argument("key", metavar="KEY", help="the partner's public key (base64)")
    database_flag(sealing_key)
    sealing_key.set_defaults(run=_set_partner_key)


def _add_partner(args: argparse.Namespace, settings: Settings) -> int:
    name = " ".join(args.name.split())
    code = (args.code or code_from_name(name)).strip().lower()
    if not name or len(name) > 200:
        return fail("--name must be 1 to 200 characters")
    if not CODE.fullmatch(code):
        return fail(
            "--code must be 1 to 64 lower-case letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )

    if args.public_key is not None:
        try:
            sealing.parse_public_key(args.public_key)
        except sealing.BadKey as exc:
            return fail(f"--public-key: {exc}")

    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        if petition_id is None:
            return fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
        try:
            partner = await storage.add_partner(petition_id, code, name, args.public_key)
        except Conflict as exc:
            return fail(f"{exc}; choose another with --code")
        key = await new_key(storage, access_keys.PARTNER, name, petition_id, partner.id)
        print(f"Added partner '{name}' with code {code} to {args.petition}.\n")
        print("Their snippet, to paste where the widget should appear:\n")
        # The placeholder sized for this petition (its tallest language: no data-lang) on
        # this partner's page, where the widget adds the partner's consent box.
        entry = next(e for e in await storage.petitions([partner]) if e.id == petition_id)
        space = widget.snippet_space(entry, partner=partner)
        print(snippet.embed(settings.base_url, args.petition, code, space=space))
        print(f"\nTheir access key {key.id}, for their dashboard and export:")
        show_key(key, settings)
        return 0

    return with_storage(settings, work)


def _partner_key(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        partner = await storage.partner(petition_id, args.code) if petition_id else None
        if petition_id is None or partner is None:
            return fail(f"no partner '{args.code}' on '{args.petition}' (see: partners list)")
        key = await new_key(storage, access_keys.PARTNER, partner.name, petition_id, partner.id)
        print(f"New access key {key.id} for partner '{partner.name}' ({partner.code}):")
        show_key(key, settings)
        return 0

    return with_storage(settings, work)


def _list_partners(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        petitions = {r.id: r.slug for r in await storage.petitions()}
        if args.petition and args.petition not in petitions.values():
            return fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
        active: dict[int, int] = {}
        for r in await storage.access_keys():
            if r.partner_id is not None and r.revoked_at is None:
                active[r.partner_id] = active.get(r.partner_id, 0) + 1
        rows = []
        for partner in await storage.partners():
            slug = petitions[partner.petition_id]
            if args.petition and slug != args.petition:
                continue
            count = (await storage.partner_totals(partner.petition_id)).get(partner.id, 0)
            rows.append((slug, partner.code, count, active.get(partner.id, 0), partner.name))
        if not rows:
            print("No partners yet: petition-widget partners add SLUG --name NAME")
            return 0
        slug_w = max(len("PETITION"), *(len(r[0]) for r in rows))
        code_w = max(len("CODE"), *(len(r[1]) for r in rows))
        print(f"{'PETITION':<{slug_w}}  {'CODE':<{code_w}}  {'SIGNATURES':>10}  KEYS  NAME")
        for slug, code, count, n_keys, name in rows:
            print(f"{slug:<{slug_w}}  {code:<{code_w}}  {count:>10,}  {n_keys:>4}  {name}")
        return 0

    return with_storage(settings, work)


def _set_partner_key(args: argparse.Namespace, settings: Settings) -> int:
    try:
        sealing.parse_public_key(args.key)
    except sealing.BadKey as exc:
        return fail(f"KEY: {exc}")

    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        if petition_id is None or not await storage.set_partner_key(
            petition_id, args.code, args.key.strip()
        ):
            return fail(f"no partner '{args.code}' on '{args.petition}' (see: partners list)")
        print(
            f"Consenting signers of {args.code} on {args.petition} are sealed for this key from "
            "now on; those before it have no copy for the partner."
        )
        return 0

    return with_storage(settings, work)
