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
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import uvicorn

from server import settings as settings_module
from server import wiring
from server.domain import access_keys, export, sealing, snippet
from server.domain.errors import Conflict, StorageUnavailable
from server.domain.export import ExportRow
from server.domain.partners import CODE, code_from_name
from server.domain.petitions import Entry, Petition, PetitionFileError, load_file
from server.domain.validation import FieldErrors, validate_signer
from server.settings import Settings, SettingsError, missing_for_confirmation
from server.store import confirmations, retention, seal
from server.store.engine import describe
from server.store.keying import WrongHashKey
from server.store.storage import Storage
from server.web import bundle, demo, mailcatcher, spreadsheet
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

logger = logging.getLogger("petition_widget.cli")


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


class _Parser(argparse.ArgumentParser):
    """argparse quotes back what it could not use ("invalid choice: 'x@y'", "unrecognized
    arguments: x@y"), so an address typed on the command line by mistake (`signatures remove
    SLUG --email x@y`) would be printed to the terminal, its scrollback and CI logs. Its
    messages leave out every word with an "@". The subcommands' parsers are of this class too
    (argparse makes them of the root parser's class)."""

    def error(self, message: str) -> NoReturn:
        super().error(_without_addresses(message))


_ADDRESS = re.compile(r"\S*@\S*")


def _without_addresses(text: str) -> str:
    return _ADDRESS.sub("(an address, not shown)", text)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    _export_commands(commands)
    seal = commands.add_parser(
        "seal", help="seal the signer data a database holds in clear (SEALING_PUBLIC_KEY)"
    )
    _database_flag(seal)
    seal.set_defaults(run=_seal)
    group = commands.add_parser(
        "retention", help="delete signer data of petitions closed longer than [retention] days"
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="do now what the background job does every hour")
    run.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    _database_flag(run)
    run.set_defaults(run=_retention)
    return parser


def _export_commands(commands: Any) -> None:
    formats = (*export.FORMATS, "xlsx")
    out = commands.add_parser(
        "export",
        help="a petition's signers, read from the database and opened here with the secret key",
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
    _database_flag(out)
    out.set_defaults(run=_export)
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
    opened.set_defaults(run=_export_open)  # fmt: skip


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
    sealing_keys = actions.add_parser(
        "create-sealing",
        help="a key pair for sealed signer data: the secret to a file (0600), the public shown",
    )
    sealing_keys.add_argument(
        "--out", type=Path, metavar="FILE",
        help=f"where the secret key goes (default: {SEALING_KEY_FILE}); never overwritten",
    )  # fmt: skip
    sealing_keys.set_defaults(run=_create_sealing)
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
    add.add_argument(
        "--public-key", metavar="KEY", help="the partner's sealing public key (base64)"
    )
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
    sealing_key = actions.add_parser(
        "set-sealing-key",
        help="seal this partner's consenting signers for its key from now on (not earlier ones)",
    )
    sealing_key.add_argument("petition", metavar="SLUG")
    sealing_key.add_argument("code", metavar="CODE")
    sealing_key.add_argument("key", metavar="KEY", help="the partner's public key (base64)")
    _database_flag(sealing_key)
    sealing_key.set_defaults(run=_set_partner_key)


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
    except WrongHashKey as exc:
        print(f"petition-widget: {exc}", file=sys.stderr)
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

    if args.public_key is not None:
        try:
            sealing.parse_public_key(args.public_key)
        except sealing.BadKey as exc:
            return _fail(f"--public-key: {exc}")

    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        if petition_id is None:
            return _fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
        try:
            partner = await storage.add_partner(petition_id, code, name, args.public_key)
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
            # An address typed where the slug goes is not printed back either.
            slug = _without_addresses(args.petition)
            return _fail(f"no petition '{slug}' (see: petition-widget petitions list)")
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


def _set_partner_key(args: argparse.Namespace, settings: Settings) -> int:
    try:
        sealing.parse_public_key(args.key)
    except sealing.BadKey as exc:
        return _fail(f"KEY: {exc}")

    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        if petition_id is None or not await storage.set_partner_key(
            petition_id, args.code, args.key.strip()
        ):
            return _fail(f"no partner '{args.code}' on '{args.petition}' (see: partners list)")
        print(
            f"Consenting signers of {args.code} on {args.petition} are sealed for this key from "
            "now on; those before it have no copy for the partner."
        )
        return 0

    return _with_storage(settings, work)


def _seal(args: argparse.Namespace, settings: Settings) -> int:
    """Seal a plaintext database in place: resumable, idempotent, then its files rebuilt."""
    hasher = wiring.email_hasher(settings)
    if not settings.sealing_public_key:
        return _fail("SEALING_PUBLIC_KEY is not set (make a pair: keys create-sealing)")
    if hasher is None:
        return _fail("EMAIL_HASH_KEY is not set: sealed rows keep a keyed hash of their domain")

    def report(progress: seal.Progress) -> None:
        share = progress.done / progress.total if progress.total else 1.0
        bar = "#" * int(share * 30)
        print(f"\rsealing [{bar:<30}] {progress.done:,}/{progress.total:,}", end="",
              file=sys.stderr, flush=True)  # fmt: skip

    async def work(storage: Storage) -> int:
        done = await seal.seal_database(storage, settings.sealing_public_key, hasher, report)
        print(file=sys.stderr)
        print(
            f"Sealed {done:,} row(s); the database's files were rebuilt without the plaintext. "
            "Backups, WAL archives and replicas made before keep it until they expire."
        )
        return 0

    return _with_storage(settings, work)


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
        print("Deleted that personal data; counts, charts and totals are unchanged.")
        return 0

    return _with_storage(settings, work)


# --- Sealed data: keys and offline exports -----------------------------------------------------

SEALING_KEY_FILE = Path("petition-widget-sealing.secret")


def _create_sealing(args: argparse.Namespace, settings: Settings) -> int:
    """A key pair: the secret goes to a file of its own (0600, never overwritten), for the
    owner to keep off the server; only the public key is printed."""
    path: Path = args.out or SEALING_KEY_FILE
    public, secret = sealing.new_key_pair()
    try:
        _write_private(path, secret + "\n", exclusive=True)
    except FileExistsError:
        return _fail(f"{path} exists: choose another file with --out (a key is never replaced)")
    except OSError as exc:
        return _fail(f"cannot write {path}: {describe(exc)}")
    print(f"Secret key written to {path} (mode 0600). Keep it OFF this server: make two offline")
    print("copies (e.g. two USB sticks in different places), then delete it here. Whoever holds")
    print("it can read every sealed signer; without it, nobody can, including you.\n")
    print("Public key, for the server:\n")
    print(f"    SEALING_PUBLIC_KEY={public}\n")
    print("Open an export with: petition-widget export-open FILE --secret-key SECRET_FILE")
    return 0


def _write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def _secret_key(path: Path) -> Any:
    """The secret key in `path`, or SettingsError saying why not (never its content)."""
    try:
        return sealing.parse_secret_key(path.read_text().strip())
    except OSError as exc:
        raise SettingsError(f"cannot read the secret key {path}: {describe(exc)}") from None
    except sealing.BadKey as exc:
        raise SettingsError(f"{path}: {exc}") from None


async def _write_rows(
    rows: AsyncIterator[ExportRow], columns: Sequence[str], args: argparse.Namespace
) -> None:
    """Rows as CSV, JSON or XLSX, to `--out` (created 0600: it holds personal data) or
    stdout."""
    if args.format == "xlsx":
        if args.out is not None:
            os.close(os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
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
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        async for chunk in chunks:
            f.write(chunk)


def _export(args: argparse.Namespace, settings: Settings) -> int:
    """Read the database (no server needed, and none created) and open its sealed rows here."""
    try:
        secret = _secret_key(args.secret_key)
    except SettingsError as exc:
        return _fail(str(exc))

    async def run() -> int:
        storage = Storage(settings.database_url, synchronous=settings.sqlite_synchronous)
        if storage.engine.database_missing():
            return _fail("there is no database at DATABASE_URL (nothing was created)")
        await storage.connect()
        try:
            petition_id = await storage.petition_id(args.petition)
            if petition_id is None:
                return _fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
            partner = None
            if args.partner:
                partner = await storage.partner(petition_id, args.partner)
                if partner is None:
                    return _fail(f"no partner '{args.partner}' on '{args.petition}'")
            # The owner's key opens the owner's boxes; a partner's key its copies.
            own = partner is not None and partner.public_key == sealing.encode_key(
                secret.public_key
            )
            stored = storage.export_rows(
                petition_id, partner.id if partner else None, partner_box=own
            )
            columns = export.PARTNER_COLUMNS if partner else export.OWNER_COLUMNS

            async def opened() -> AsyncIterator[ExportRow]:
                async for row in stored:
                    yield export.open_row(row, secret)

            await _write_rows(opened(), columns, args)
            return 0
        finally:
            await storage.disconnect()

    try:
        return asyncio.run(run())
    except sealing.BadKey as exc:
        return _fail(f"{exc} (is it the key of this petition's SEALING_PUBLIC_KEY?)")
    except (StorageUnavailable, OSError) as exc:
        return _fail(f"cannot read the database: {describe(exc)}")


def _export_open(args: argparse.Namespace, settings: Settings) -> int:
    """Open a sealed export offline: no database, no server, nothing but the file and the key."""
    try:
        secret = _secret_key(args.secret_key)
    except SettingsError as exc:
        return _fail(str(exc))

    async def run() -> int:
        with args.file.open(encoding="utf-8") as f:
            header = export.sealed_header(f.readline())
            columns = header.get("columns") or export.OWNER_COLUMNS
            if not set(columns) <= set(export.OWNER_COLUMNS):
                raise export.BadExport("the sealed export names columns we do not know")

            async def opened() -> AsyncIterator[ExportRow]:
                for line in f:
                    if line.strip():
                        yield export.open_line(line, secret)

            await _write_rows(opened(), columns, args)
        return 0

    try:
        return asyncio.run(run())
    except sealing.BadKey as exc:
        return _fail(f"{exc} (the export says whose key it needs: its first line)")
    except export.BadExport as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {describe(exc)}")


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

    if not settings.email_hash_key:
        # Every worker and host must hash addresses alike, so the key cannot be made here.
        return _fail(
            "cannot serve: EMAIL_HASH_KEY (or EMAIL_HASH_KEY_FILE) must be set with PostgreSQL, "
            "the same on every host (generate one with: python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'), and never changed"
        )

    async def work(storage: Storage) -> int:
        _warn_of_exposed_files(storage)
        entries = await storage.petitions(await storage.partners())
        problem = _mail_problem(entries, settings)
        if problem:
            print(f"petition-widget: cannot serve: {problem}", file=sys.stderr)
            return 1
        _sealing_notice(entries, settings)
        return 0

    return _with_storage(settings, work)


def _sealing_notice(entries: Sequence[Entry], settings: Settings) -> None:
    """Say what sealing does, or that it is off: a choice the owner should make knowingly."""
    if not settings.sealing_public_key:
        logger.warning(
            "SEALING_PUBLIC_KEY is not set: names, emails and comments are stored in clear, and "
            "a copy of this server's disk names every signer. Make a key pair with: "
            "petition-widget keys create-sealing (see docs/operations.md)"
        )
        return
    keyless = [f"{e.slug}/{code}" for e in entries for code, p in e.partners.items()
               if not p.public_key]  # fmt: skip
    if keyless:
        logger.warning(
            "signer data is sealed; partners without a sealing key get no personal data: %s "
            "(set one with: petition-widget partners set-sealing-key SLUG CODE KEY)",
            ", ".join(keyless),
        )


def _warn_of_exposed_files(storage: Storage) -> None:
    """Name each database file that group or others may read or write (made so by an older
    release, a copy or a restore): anyone who may read it has every row, whatever the
    dashboard's keys. A warning, not a refusal: the operator may share the machine on purpose."""
    for path, mode in storage.exposed_files():
        print(
            f"petition-widget: warning: {path} is readable or writable by group or others "
            f"(mode {mode:04o}); make it private with: chmod 600 {path}",
            file=sys.stderr,
        )


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
    # Signer data is sealed, as it should be for a petition like this one, for a key pair the
    # demo keeps in the working directory (a real owner keeps the secret off the server).
    try:
        public, secret_file = demo_sealing_key(Path.cwd())
    except (OSError, sealing.BadKey) as exc:
        catcher.stop_thread()
        return _fail(f"cannot make the demo's sealing key: {describe(exc)}")
    settings = dataclasses.replace(settings, sealing_public_key=public)
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
        f"  Signer data: sealed for the demo's key ({secret_file}). Open the dashboard's\n"
        f"    sealed export with: petition-widget export-open FILE --secret-key {secret_file}\n"
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


DEMO_SEALING_KEY = "petition-widget-demo-sealing.secret"


def demo_sealing_key(folder: Path) -> tuple[str, Path]:
    """The demo's sealing key pair: its secret kept in `folder` (0600), made on the first run
    and read on the next ones, so the demo's earlier signers still open. Returns the public key
    and the secret's file."""
    path = folder / DEMO_SEALING_KEY
    if not path.exists():
        _, secret = sealing.new_key_pair()
        _write_private(path, secret + "\n", exclusive=True)
    secret_key = sealing.parse_secret_key(path.read_text().strip())
    return sealing.encode_key(secret_key.public_key), path


def demo_mail_settings(settings: Settings, smtp_url: str) -> Settings:
    """The demo's settings with its mail going to `smtp_url` (its catcher) from
    `DEMO_MAIL_FROM`, whatever the environment says: a demo never mails the outside world."""
    return dataclasses.replace(
        settings, smtp_url=smtp_url, mail_from=DEMO_MAIL_FROM, base_url_set=True
    )


if __name__ == "__main__":
    sys.exit(main())
