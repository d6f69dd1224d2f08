"""The `petition-widget` command: serve, demo, and the owner's tasks (petitions, keys,
partners, signatures, exports, sealing, retention), one module per command group.

Flags override environment variables, which override defaults (see `settings`).

A command works on an existing database unless its parser says otherwise
(`set_defaults(database="create")`: `petitions import`, `serve`, `demo`; `"none"`: the offline
ones): connecting to a missing SQLite file would create it, empty, and a newcomer's key made
there would open nothing (`common.missing_database` says which file to use instead).
"""

from __future__ import annotations

import argparse
import logging.config
import os
import sys
from collections.abc import Sequence
from typing import Any

from server import settings as settings_module
from server.cli import (
    delivery,
    exports,
    keys,
    partners,
    petitions,
    retention,
    seal,
    serving,
    signatures,
    webhooks,
)
from server.cli.common import DEMO_DATABASE, Parser, fail, missing_database
from server.cli.serving import (
    DEMO_PARTNER,
    DEMO_SEALING_KEY,
    UVICORN_OPTIONS,
    demo_keys,
    demo_mail_settings,
    logging_config,
)
from server.settings import Settings, SettingsError
from server.store.engine import UnknownDatabase, normalise_url

__all__ = [
    "DEMO_PARTNER",
    "DEMO_SEALING_KEY",
    "UVICORN_OPTIONS",
    "demo_keys",
    "demo_mail_settings",
    "logging_config",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    # Before the settings: loading them makes key files beside a SQLite database, and a command
    # that would only read must leave an empty directory as it found it.
    if getattr(args, "database", "existing") == "existing":
        problem = _missing_database(args)
        if problem:
            return fail(problem)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"petition-widget: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(logging_config(settings.log_level, settings.access_log))
    result: int = args.run(args, settings)
    return result


def _missing_database(args: argparse.Namespace) -> str:
    """`common.missing_database` for the URL the settings will use ("" if it is not valid:
    loading the settings then says why)."""
    url = getattr(args, "database_url", None) or os.environ.get(
        "DATABASE_URL", settings_module.SETTINGS["DATABASE_URL"].default
    )
    try:
        return missing_database(normalise_url(url.strip()))
    except UnknownDatabase:
        return ""


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        name: getattr(args, name, None)
        for name in ("database_url", "host", "port", "workers", "base_url")
    }
    if getattr(args, "command", "") == "demo":
        overrides["database_url"] = overrides["database_url"] or os.environ.get(
            "DATABASE_URL", DEMO_DATABASE
        )
        return settings_module.load(demo=True, **overrides)
    # The offline commands (export, export-open, keys create-sealing) leave no key file behind.
    return settings_module.load(generate=not getattr(args, "offline", False), **overrides)


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="petition-widget",
        description="An embeddable petition widget and its server.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (
        serving, petitions, keys, partners, signatures, exports, delivery, seal, retention,
        webhooks,
    ):  # fmt: skip
        module.add_commands(commands)
    return parser
