"""`serve` and `demo`: the database prepared in this process (migrations, keys, checks)
before uvicorn starts its workers, so workers never race to create them."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from server.cli.common import (
    fail,
    mail_problem,
    new_key,
    server_flags,
    with_storage,
    write_private,
)
from server.domain import access_keys, sealing
from server.domain.petitions import Entry, load_file
from server.settings import CONNECTIONS_PER_WORKER, Settings
from server.store.engine import describe
from server.store.storage import Storage
from server.web import bundle, demo, mailcatcher
from server.web.protocol import GuardedHttpToolsProtocol

DEMO_PARTNER = ("open-doors", "Open Doors Network")


DEMO_LABEL = "demo"


DEMO_MAIL_FROM = "demo@petition-widget.localhost"  # the sender of the demo's (caught) mails


UVICORN_OPTIONS: dict[str, Any] = {
    "timeout_keep_alive": 5,
    "timeout_graceful_shutdown": 30,
    "limit_concurrency": CONNECTIONS_PER_WORKER,
    "backlog": 4096,
    "h11_max_incomplete_event_size": 16 * 1024,
    "server_header": False,
    "proxy_headers": False,  # TRUSTED_PROXIES decides whose X-Forwarded-For we believe
    "http": GuardedHttpToolsProtocol,  # limits on header size and time that uvicorn lacks
}

logger = logging.getLogger("petition_widget.cli")


def add_commands(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the server (production)")
    server_flags(serve)
    serve.add_argument("--workers", type=int, help="worker processes (env WORKERS)")
    serve.add_argument("--base-url", help="public URL of this server (env BASE_URL)")
    serve.set_defaults(run=_serve, database="create")

    demo_command = commands.add_parser(
        "demo", help="run a demo: SQLite, the example petition, a partner page at /"
    )
    server_flags(demo_command)
    demo_command.set_defaults(run=_demo, database="create")


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


def _prepare(settings: Settings) -> int:
    """Migrate the database; refuse (non-zero) when an open petition needs mails that these
    settings cannot send: its signers would wait for a confirmation that never comes."""

    if not settings.email_hash_key:
        # Every worker and host must hash addresses alike, so the key cannot be made here.
        return fail(
            "cannot serve: EMAIL_HASH_KEY (or EMAIL_HASH_KEY_FILE) must be set with PostgreSQL, "
            "the same on every host (generate one with: python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'), and never changed"
        )

    async def work(storage: Storage) -> int:
        _warn_of_exposed_files(storage)
        entries = await storage.petitions(await storage.partners())
        problem = mail_problem(entries, settings)
        if problem:
            print(f"petition-widget: cannot serve: {problem}", file=sys.stderr)
            return 1
        _sealing_notice(entries, settings)
        return 0

    return with_storage(settings, work, create=True)


def _sealing_notice(entries: Sequence[Entry], settings: Settings) -> None:
    """Say what sealing does, or that it is off: a choice the owner should make knowingly."""
    if not settings.sealing_public_key:
        logger.warning(
            "SEALING_PUBLIC_KEY is not set: names, emails and comments are stored in clear, and "
            "a copy of this server's disk names every signer. Make a key pair with: "
            "petition-widget keys create-sealing (see docs/operations.md). Once it is set, "
            "partners without a sealing key of their own get no personal data (set one with: "
            "petition-widget partners set-sealing-key SLUG CODE KEY)"
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
    owner = await new_key(storage, access_keys.OWNER, DEMO_LABEL)
    return owner, await new_key(storage, access_keys.PARTNER, DEMO_LABEL, petition_id, partner.id)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from server.wiring import create_app

    petition = load_file(bundle.EXAMPLE_PETITION)

    made: list[access_keys.Key] = []
    # Before any key is touched: a second demo on a busy port would revoke the running demo's
    # keys (demo_keys), then fail to listen.
    busy = port_in_use(settings.host, settings.port)
    if busy:
        return fail(
            f"cannot start the demo: {settings.host}:{settings.port} is in use ({busy}); is "
            "a demo running already? Stop it, or choose another port with --port"
        )

    async def work(storage: Storage) -> int:
        await storage.import_petitions([petition])
        made.extend(await demo_keys(storage, petition.slug))
        return 0

    if with_storage(settings, work, create=True):
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
        return fail(f"cannot make the demo's sealing key: {describe(exc)}")
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


def port_in_use(host: str, port: int) -> str:
    """Why `host:port` cannot be listened on now (uvicorn binds with SO_REUSEADDR too, so a
    port in TIME_WAIT is free), or "". Port 0 (any free port) is always free."""
    if not port:
        return ""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return ""


DEMO_SEALING_KEY = "petition-widget-demo-sealing.secret"


def demo_sealing_key(folder: Path) -> tuple[str, Path]:
    """The demo's sealing key pair: its secret kept in `folder` (0600), made on the first run
    and read on the next ones, so the demo's earlier signers still open. Returns the public key
    and the secret's file."""
    path = folder / DEMO_SEALING_KEY
    if not path.exists():
        _, secret = sealing.new_key_pair()
        write_private(path, secret + "\n", exclusive=True)
    secret_key = sealing.parse_secret_key(path.read_text().strip())
    return sealing.encode_key(secret_key.public_key), path


def demo_mail_settings(settings: Settings, smtp_url: str) -> Settings:
    """The demo's settings with its mail going to `smtp_url` (its catcher) from
    `DEMO_MAIL_FROM`, whatever the environment says: a demo never mails the outside world."""
    return dataclasses.replace(
        settings, smtp_url=smtp_url, mail_from=DEMO_MAIL_FROM, base_url_set=True
    )
