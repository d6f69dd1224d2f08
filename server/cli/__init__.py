"""The `petition-widget` command: serve, demo, and the owner's tasks (petitions, keys,
partners, signatures, exports, sealing, retention), one module per command group.

Flags override environment variables, which override defaults (see `settings`).
"""

from __future__ import annotations

import argparse
import logging.config
import os
import sys
from collections.abc import Sequence

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
)
from server.cli.common import Parser
from server.cli.serving import (
    DEMO_DATABASE,
    DEMO_PARTNER,
    DEMO_SEALING_KEY,
    UVICORN_OPTIONS,
    demo_keys,
    demo_mail_settings,
    logging_config,
)
from server.settings import Settings, SettingsError

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
    parser = Parser(
        prog="petition-widget",
        description="An embeddable petition widget and its server.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (
        serving, petitions, keys, partners, signatures, exports, delivery, seal, retention,
    ):  # fmt: skip
        module.add_commands(commands)
    return parser
