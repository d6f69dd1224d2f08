"""The `petition-widget` command: serve, demo, and the owner's tasks (petitions, keys,
partners).

Flags override environment variables, which override defaults (see `settings`). `serve` and
`demo` prepare the database (migrations, secret key) in this process before uvicorn starts its
workers, so workers never race to create them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging.config
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from server import settings as settings_module
from server import wiring
from server.domain import access_keys, snippet
from server.domain.errors import Conflict, StorageUnavailable
from server.domain.partners import CODE, code_from_name
from server.domain.petitions import Entry, Petition, PetitionFileError, load_file
from server.domain.validation import FieldErrors, validate_signer
from server.settings import Settings, SettingsError, missing_for_confirmation
from server.store import confirmations
from server.store.engine import describe
from server.store.storage import Storage
from server.web import bundle, demo, mailcatcher
from server.web.protocol import GuardedHttpToolsProtocol

DEMO_DATABASE = "sqlite:///petition-widget-demo.db"
# The partner whose page the demo serves at / (examples/partner-site.html names its code), and
# the label of the keys each demo run makes afresh (the run before's are revoked).
DEMO_PARTNER = ("open-doors", "Open Doors Network")
DEMO_LABEL = "demo"
DEMO_MAIL_FROM = "demo@petition-widget.localhost"  # the sender of the demo's (caught) mails

# uvicorn settings for production serving; the reasons are in docs/operations.md.
UVICORN_OPTIONS: dict[str, Any] = {
    "timeout_keep_alive": 5,
    "timeout_graceful_shutdown": 30,
    "limit_concurrency": 4096,
    "backlog": 4096,
    "h11_max_incomplete_event_size": 16 * 1024,
    "server_header": False,
    "proxy_headers": False,  # TRUSTED_PROXIES decides whose X-Forwarded-For we believe
    "http": GuardedHttpToolsProtocol,  # limits on header size and time that uvicorn lacks
}


def logging_config(level: str, access_log: bool) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            "petition_widget": {"level": level.upper()},
            "uvicorn": {"level": "INFO"},
            "uvicorn.access": {"level": "INFO" if access_log else "CRITICAL"},
            # `databases` logs query parameters (signers' emails) at DEBUG: never below WARNING.
            "databases": {"level": "WARNING"},
            # aiosmtpd (the demo's mail catcher) logs every recipient's address at INFO, and
            # aiosmtplib the conversation at DEBUG: never below WARNING either.
            "mail.log": {"level": "WARNING"},
            "aiosmtplib": {"level": "WARNING"},
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"petition-widget: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(logging_config(settings.log_level, settings.access_log))
    result: int = args.run(args, settings)
    return result


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name, None)
        for name in ("database_url", "host", "port", "workers", "base_url")
    }
    if getattr(args, "command", "") == "demo":
        overrides["database_url"] = overrides["database_url"] or os.environ.get(
            "DATABASE_URL", DEMO_DATABASE
        )
        return settings_module.load(demo=True, **overrides)
    return settings_module.load(**overrides)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petition-widget",
        description="An embeddable petition widget and its server.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server (production)")
    _server_flags(serve)
    serve.add_argument("--workers", type=int, help="worker processes (env WORKERS)")
    serve.add_argument("--base-url", help="public URL of this server (env BASE_URL)")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo", help="run a demo: SQLite, the example petition, a partner page at /"
    )
    _server_flags(demo)
    demo.set_defaults(run=_demo)

    petitions = commands.add_parser("petitions", help="import and list petitions")
    petition_commands = petitions.add_subparsers(dest="action", metavar="ACTION", required=True)
    do_import = petition_commands.add_parser(
        "import", help="create or update petitions from TOML files (all or nothing)"
    )
    do_import.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _database_flag(do_import)
    do_import.set_defaults(run=_import)
    do_list = petition_commands.add_parser("list", help="slug, title, count and goal of each")
    _database_flag(do_list)
    do_list.set_defaults(run=_list)
    _key_commands(commands)
    _partner_commands(commands)
    _signature_commands(commands)
    return parser


def _signature_commands(commands: Any) -> None:
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
    _database_flag(remove)
    remove.set_defaults(run=_remove_signer)


def _key_commands(commands: Any) -> None:
    group = commands.add_parser("keys", help="owner keys for the dashboard: create, list, revoke")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create-owner", help="a new owner key, shown once (for every petition, or one)"
    )
    create.add_argument("--petition", metavar="SLUG", help="only this petition (default: all)")
    create.add_argument("--label", default="", help="what the key is for, e.g. who holds it")
    create.add_argument("--base-url", help="public URL of this server (env BASE_URL)")
    _database_flag(create)
    create.set_defaults(run=_create_owner)
    listed = actions.add_parser("list", help="every key: id, role, scope, label, state")
    _database_flag(listed)
    listed.set_defaults(run=_list_keys)
    revoke = actions.add_parser("revoke", help="revoke a key at once, owner's or partner's")
    revoke.add_argument("key", metavar="KEY", help="the key's id (or the whole key)")
    _database_flag(revoke)
    revoke.set_defaults(run=_revoke)


def _partner_commands(commands: Any) -> None:
    group = commands.add_parser("partners", help="partner organisations: add, list, new key")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="add a partner to a petition; prints its snippet and access key"
    )
    add.add_argument("petition", metavar="SLUG", help="the petition")
    add.add_argument("--name", required=True, help='the partner\'s name, e.g. "Open Doors"')
    add.add_argument("--code", help="its partner code (default: made from the name)")
    add.add_argument("--base-url", help="public URL of this server (env BASE_URL)")
    _database_flag(add)
    add.set_defaults(run=_add_partner)
    listed = actions.add_parser("list", help="partners with their counts and keys")
    listed.add_argument("petition", metavar="SLUG", nargs="?", help="only this petition")
    _database_flag(listed)
    listed.set_defaults(run=_list_partners)
    key = actions.add_parser(
        "key", help="a new access key for a partner (a lost one: revoke it with keys revoke)"
    )
    key.add_argument("petition", metavar="SLUG")
    key.add_argument("code", metavar="CODE")
    key.add_argument("--base-url", help="public URL of this server (env BASE_URL)")
    _database_flag(key)
    key.set_defaults(run=_partner_key)


def _database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="database URL (env DATABASE_URL)")


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (env HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (env PORT)")
    _database_flag(parser)


# --- Commands ------------------------------------------------------------------------------------


def _with_storage(settings: Settings, work: Callable[[Storage], Awaitable[int]]) -> int:
    async def run() -> int:
        storage = Storage(settings.database_url, synchronous=settings.sqlite_synchronous)
        await storage.connect()
        try:
            await storage.migrate(wiring.email_hasher(settings))
            return await work(storage)
        finally:
            await storage.disconnect()

    try:
        return asyncio.run(run())
    except StorageUnavailable as exc:
        print(f"petition-widget: cannot open the database: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"petition-widget: cannot open the database: {describe(exc)}", file=sys.stderr)
    return 1


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
        problem = _mail_problem(await storage.petitions(), settings)
        if problem:
            print(f"petition-widget: warning: {problem}", file=sys.stderr)
        return 0

    return _with_storage(settings, work)


def _mail_problem(entries: Sequence[Entry], settings: Settings) -> str:
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

    return _with_storage(settings, work)


# --- Keys and partners -----------------------------------------------------------------------


async def _new_key(
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


def _fail(message: str) -> int:
    print(f"petition-widget: {message}", file=sys.stderr)
    return 1


def _show_key(key: access_keys.Key, settings: Settings) -> None:
    print(f"\n    {key.text}\n")
    print(
        "Shown only this once, and stored only as a digest: put it in a password manager now.\n"
        f"Sign in at {settings.base_url}/admin/login\n"
        f"Revoke it with: petition-widget keys revoke {key.id}"
    )


def _create_owner(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        petition_id = None
        if args.petition:
            petition_id = await storage.petition_id(args.petition)
            if petition_id is None:
                return _fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
        key = await _new_key(storage, access_keys.OWNER, args.label.strip(), petition_id)
        scope = f"petition '{args.petition}'" if args.petition else "every petition"
        print(f"New owner key {key.id} for {scope}:")
        _show_key(key, settings)
        return 0

    return _with_storage(settings, work)


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
            state = "active" if r.revoked_at is None else f"revoked {_date(r.revoked_at)}"
            table.append((r.id, r.role, scope, _date(r.created_at), state, r.label))
        _print_table(("ID", "ROLE", "SCOPE", "CREATED", "STATE", "LABEL"), table)
        return 0

    return _with_storage(settings, work)


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    key_id = access_keys.key_id(args.key)
    if key_id is None:
        return _fail("that is neither a key nor a key id (see: petition-widget keys list)")

    async def work(storage: Storage) -> int:
        row = await storage.access_key(key_id)
        if row is None:
            return _fail(f"no key {key_id} (see: petition-widget keys list)")
        if not await storage.revoke_access_key(key_id):
            print(f"Key {key_id} was already revoked.")
            return 0
        print(f"Revoked key {key_id}: it stops working on every server at its next request.")
        return 0

    return _with_storage(settings, work)


def _add_partner(args: argparse.Namespace, settings: Settings) -> int:
    name = " ".join(args.name.split())
    code = (args.code or code_from_name(name)).strip().lower()
    if not name or len(name) > 200:
        return _fail("--name must be 1 to 200 characters")
    if not CODE.fullmatch(code):
        return _fail(
            "--code must be 1 to 64 lower-case letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )

    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        if petition_id is None:
            return _fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
        try:
            partner = await storage.add_partner(petition_id, code, name)
        except Conflict as exc:
            return _fail(f"{exc}; choose another with --code")
        key = await _new_key(storage, access_keys.PARTNER, name, petition_id, partner.id)
        print(f"Added partner '{name}' with code {code} to {args.petition}.\n")
        print("Their snippet, to paste where the widget should appear:\n")
        print(snippet.embed(settings.base_url, args.petition, code))
        print(f"\nTheir access key {key.id}, for their dashboard and export:")
        _show_key(key, settings)
        return 0

    return _with_storage(settings, work)


def _partner_key(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        partner = await storage.partner(petition_id, args.code) if petition_id else None
        if petition_id is None or partner is None:
            return _fail(f"no partner '{args.code}' on '{args.petition}' (see: partners list)")
        key = await _new_key(storage, access_keys.PARTNER, partner.name, petition_id, partner.id)
        print(f"New access key {key.id} for partner '{partner.name}' ({partner.code}):")
        _show_key(key, settings)
        return 0

    return _with_storage(settings, work)


def _list_partners(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        petitions = {r.id: r.slug for r in await storage.petitions()}
        if args.petition and args.petition not in petitions.values():
            return _fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
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

    return _with_storage(settings, work)


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
        return _fail("EMAIL_HASH_KEY is not set: signatures are found by its keyed hash")
    try:
        key = hasher.email_key(validate_signer({"name": "-", "email": address}).email_key)
    except FieldErrors:
        return _fail("that is not a valid email address")

    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        if petition_id is None:
            return _fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
        counted, waiting = await confirmations.remove_signer(storage, petition_id, key)
        if not (counted or waiting):
            print(f"No signature of that address on {args.petition}.")
            return 0
        print(
            f"Removed from {args.petition}: {counted} counted signature(s) and "
            f"{waiting} waiting for confirmation, with their personal data."
        )
        return 0

    return _with_storage(settings, work)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [f"{cell!s:<{w}}" for cell, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, str(row[-1])]))


def _date(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def _prepare(settings: Settings) -> int:
    """Migrate the database; refuse (non-zero) when an open petition needs mails that these
    settings cannot send: its signers would wait for a confirmation that never comes."""

    async def work(storage: Storage) -> int:
        problem = _mail_problem(await storage.petitions(), settings)
        if problem:
            print(f"petition-widget: cannot serve: {problem}", file=sys.stderr)
            return 1
        return 0

    return _with_storage(settings, work)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if _prepare(settings):
        return 1
    # Workers read their settings from the environment: hand them the flags. A generated
    # secret key is not passed along: the workers read the same key file.
    os.environ.update(DATABASE_URL=settings.database_url, BASE_URL=settings.base_url)
    uvicorn.run(
        "server.wiring:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.access_log,
        log_config=logging_config(settings.log_level, settings.access_log),
        **UVICORN_OPTIONS,
    )
    return 0


async def demo_keys(storage: Storage, slug: str) -> tuple[access_keys.Key, access_keys.Key]:
    """The demo's partner (added once) and fresh dashboard keys for the owner and it. The last
    run's keys are revoked: the new ones exist in plain text only on this terminal, inside
    links whose #fragment browsers never send to a server."""
    petition_id = await storage.petition_id(slug)
    assert petition_id is not None  # imported just before
    code, name = DEMO_PARTNER
    partner = await storage.partner(petition_id, code)
    if partner is None:
        partner = await storage.add_partner(petition_id, code, name)
    await storage.revoke_access_keys_labelled(DEMO_LABEL)
    owner = await _new_key(storage, access_keys.OWNER, DEMO_LABEL)
    return owner, await _new_key(storage, access_keys.PARTNER, DEMO_LABEL, petition_id, partner.id)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from server.wiring import create_app

    petition = load_file(bundle.EXAMPLE_PETITION)

    made: list[access_keys.Key] = []

    async def work(storage: Storage) -> int:
        await storage.import_petitions([petition])
        made.extend(await demo_keys(storage, petition.slug))
        return 0

    if _with_storage(settings, work):
        return 1
    # The example petition confirms signatures by mail: the demo sends them, over real SMTP, to
    # a catcher in this process, whose mails /demo/mail lists (the app runs here too, below).
    catcher = mailcatcher.MailCatcher(mailcatcher.MAILBOX)
    catcher.start_in_thread()
    settings = demo_mail_settings(settings, catcher.url)
    base = settings.base_url
    owner, partner_key = made
    partner_label = f"The partner's view ({DEMO_PARTNER[0]}):"
    print(
        "\npetition-widget demo\n"
        f"  Partner page embedding the widget:  {base}/\n"
        f"  The widget alone:                   {base}/widget/{petition.slug}\n"
        f"  The petition's JSON:                {base}/api/petitions/{petition.slug}\n"
        f"  Mails the demo sent (confirm here): {base}{demo.MAIL_PATH}\n"
        f"  The owner's dashboard:              {base}/admin/login#key={owner.text}\n"
        f"  {partner_label:<36}{base}/admin/login#key={partner_key.text}\n"
        "  (Dashboard keys are made afresh on each demo run and shown only here.)\n"
        f"  Database: {settings.database_url}\n"
        f"  Mail: caught on {catcher.url}, never sent on\n"
        "Press Ctrl+C to stop.\n",
        flush=True,
    )
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_config=logging_config(settings.log_level, settings.access_log),
            **UVICORN_OPTIONS,
        )
    finally:
        catcher.stop_thread()
    return 0


def demo_mail_settings(settings: Settings, smtp_url: str) -> Settings:
    """The demo's settings with its mail going to `smtp_url` (its catcher) from
    `DEMO_MAIL_FROM`, whatever the environment says: a demo never mails the outside world."""
    return dataclasses.replace(
        settings, smtp_url=smtp_url, mail_from=DEMO_MAIL_FROM, base_url_set=True
    )


if __name__ == "__main__":
    sys.exit(main())
