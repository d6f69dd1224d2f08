"""The `petition-widget` command: serve, demo, and the owner's tasks (petitions).

Flags override environment variables, which override defaults (see `settings`). `serve` and
`demo` prepare the database (migrations, secret key) in this process before uvicorn starts its
workers, so workers never race to create them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging.config
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from server import bundle
from server import settings as settings_module
from server.petitions import Petition, PetitionFileError, load_file
from server.protocol import GuardedHttpToolsProtocol
from server.settings import Settings, SettingsError
from server.storage import Storage, StorageUnavailable, describe

DEMO_DATABASE = "sqlite:///petition-widget-demo.db"

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
    return parser


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
            await storage.migrate()
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
        return 0

    return _with_storage(settings, work)


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


def _prepare(settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        return 0

    return _with_storage(settings, work)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if _prepare(settings):
        return 1
    # Workers read their settings from the environment: hand them the flags. A generated
    # secret key is not passed along: the workers read the same key file.
    os.environ.update(DATABASE_URL=settings.database_url, BASE_URL=settings.base_url)
    uvicorn.run(
        "server.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.access_log,
        log_config=logging_config(settings.log_level, settings.access_log),
        **UVICORN_OPTIONS,
    )
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from server.app import create_app

    petition = load_file(bundle.EXAMPLE_PETITION)

    async def work(storage: Storage) -> int:
        await storage.import_petitions([petition])
        return 0

    if _with_storage(settings, work):
        return 1
    base = settings.base_url
    print(
        "\npetition-widget demo\n"
        f"  Partner page embedding the widget:  {base}/\n"
        f"  The widget alone:                   {base}/widget/{petition.slug}\n"
        f"  The petition's JSON:                {base}/api/petitions/{petition.slug}\n"
        f"  Database: {settings.database_url}\n"
        "Press Ctrl+C to stop.\n",
        flush=True,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=logging_config(settings.log_level, settings.access_log),
        **UVICORN_OPTIONS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
