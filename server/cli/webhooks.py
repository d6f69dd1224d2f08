"""`webhooks`: add an endpoint (its id and secret, shown once), list, remove, rotate, test,
and redeliver (every event of an endpoint that failed for good).

The rules an endpoint must follow are the domain's (`domain/webhooks.check_url`,
`address_problem`); the address is checked here once, when it is added, and again by the job
on every attempt (docs/webhooks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from server.cli.common import database_flag, fail, with_storage
from server.domain import sealing
from server.domain import webhooks as wh
from server.settings import Settings
from server.store import webhook_job, webhooks
from server.store.storage import Storage


def add_commands(commands: Any) -> None:
    group = commands.add_parser("webhooks", help="signed webhooks to CRMs: add, list, rotate")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add an endpoint; prints its id and secret (once)")
    add.add_argument("petition", metavar="SLUG", help="the petition")
    add.add_argument("url", metavar="URL", help="where events are POSTed (https://)")
    add.add_argument("--partner", metavar="CODE", help="a partner's endpoint (default: owner's)")
    add.add_argument("--format", choices=wh.FORMATS, default=wh.STANDARD)
    add.add_argument(
        "--public-key", metavar="KEY", help="with sealing on: personal fields sealed for it"
    )
    token = add.add_mutually_exclusive_group()
    token.add_argument(
        "--osdi-token-from-env", metavar="VAR", help="the OSDI-API-Token, read from $VAR"
    )
    token.add_argument(
        "--osdi-token-stdin", action="store_true", help="read the OSDI-API-Token from stdin"
    )
    add.add_argument("--allow-http", action="store_true", help="allow an http: URL")
    add.add_argument(
        "--allow-private",
        action="store_true",
        help="allow loopback, private and link-local addresses",
    )
    database_flag(add)
    add.set_defaults(run=_add)
    listed = actions.add_parser("list", help="endpoints, their state and what waits")
    listed.add_argument("petition", metavar="SLUG", nargs="?", help="only this petition")
    database_flag(listed)
    listed.set_defaults(run=_list)
    for name, run, help_ in (
        ("remove", _remove, "remove an endpoint and its queued events"),
        ("rotate", _rotate, "a new secret; the old one signs too for 24 h"),
        ("test", _test, "queue a webhook.test event (not for OSDI endpoints)"),
        ("redeliver", _redeliver, "try every event that failed for good again now"),
    ):
        action = actions.add_parser(name, help=help_)
        action.add_argument("id", metavar="ID", type=int)
        database_flag(action)
        action.set_defaults(run=run)


def _osdi_token(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(token, problem): never from the command line, where other users see it."""
    if args.osdi_token_from_env:
        value = os.environ.get(args.osdi_token_from_env, "").strip()
        if not value:
            return None, f"--osdi-token-from-env: ${args.osdi_token_from_env} is empty or unset"
        return value, None
    if args.osdi_token_stdin:
        value = sys.stdin.readline().strip()
        if not value:
            return None, "--osdi-token-stdin: nothing was read from standard input"
        return value, None
    return None, None


def _add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        url = wh.check_url(args.url, allow_http=args.allow_http)
    except wh.BadEndpoint as exc:
        return fail(f"URL: {exc}")
    sealing_on = bool(settings.sealing_public_key)
    if args.format == wh.OSDI and sealing_on:
        return fail(
            "--format osdi is refused with sealing on (SEALING_PUBLIC_KEY): an OSDI record "
            "needs the address in clear, and sealed data leaves this server only sealed"
        )
    if args.format != wh.OSDI and (args.osdi_token_from_env or args.osdi_token_stdin):
        return fail("an OSDI token is only for --format osdi")
    if args.public_key is not None:
        try:
            sealing.parse_public_key(args.public_key)
        except sealing.BadKey as exc:
            return fail(f"--public-key: {exc}")
    token, problem = _osdi_token(args)
    if problem:
        return fail(problem)
    try:
        asyncio.run(webhook_job.checked_address(url, args.allow_private))
    except webhook_job.Refused as refused:
        return fail(f"URL: {refused.rule}")
    except webhook_job.Failed:
        print(
            f"petition-widget: warning: {url.host} does not resolve now; every delivery "
            "resolves and checks it again",
            file=sys.stderr,
        )

    async def work(storage: Storage) -> int:
        petition_id = await storage.petition_id(args.petition)
        if petition_id is None:
            return fail(f"no petition '{args.petition}' (see: petition-widget petitions list)")
        partner_id = None
        if args.partner:
            partner = await storage.partner(petition_id, args.partner.strip().lower())
            if partner is None:
                return fail(f"no partner '{args.partner}' on '{args.petition}' (partners list)")
            partner_id = partner.id
        new_id, secret = await webhooks.add(
            storage, petition_id=petition_id, partner_id=partner_id, url=args.url,
            format=args.format, public_key=args.public_key.strip() if args.public_key else None,
            osdi_token=token, allow_http=args.allow_http, allow_private=args.allow_private,
            now=time.time(),
        )  # fmt: skip
        whose = f"partner {args.partner}" if args.partner else "the owner"
        print(f"Added webhook endpoint {new_id} for {whose} on {args.petition}.")
        if sealing_on and not args.public_key:
            print("Sealing is on and it has no --public-key: its events carry no personal data.")
        print("Its signing secret (shown once; keep it in the receiver's settings):")
        print(secret)
        return 0

    return with_storage(settings, work)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        petition_id = None
        if args.petition:
            petition_id = await storage.petition_id(args.petition)
            if petition_id is None:
                return fail(f"no petition '{args.petition}'")
        found = await webhooks.endpoints(storage, petition_id)
        if not found:
            print("No webhook endpoints yet: petition-widget webhooks add SLUG URL")
            return 0
        print("ID  PETITION  PARTNER  FORMAT  STATE  WAITING  FAILED  URL")
        counts = await webhooks.waiting_counts(storage)
        for e in found:
            waiting, failed = counts.get(e.id, (0, 0))
            state = f"disabled ({e.disabled_reason})" if e.disabled_at else "enabled"
            print(
                f"{e.id}  {e.petition}  {e.partner_code or '-'}  {e.format}  {state}  "
                f"{waiting}  {failed}  {e.url}"
            )
        return 0

    return with_storage(settings, work)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        if not await webhooks.remove(storage, args.id):
            return fail(f"no webhook endpoint {args.id} (see: webhooks list)")
        print(f"Removed webhook endpoint {args.id} and its queued events.")
        return 0

    return with_storage(settings, work)


def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        secret = await webhooks.rotate(storage, args.id, time.time())
        if secret is None:
            return fail(f"no webhook endpoint {args.id} (see: webhooks list)")
        print(f"New signing secret for endpoint {args.id} (shown once). For 24 hours the old")
        print("one signs too (two space-separated signatures), then only this one:")
        print(secret)
        return 0

    return with_storage(settings, work)


def _test(args: argparse.Namespace, settings: Settings) -> int:
    async def work(storage: Storage) -> int:
        endpoint = await webhooks.endpoint(storage, args.id)
        if endpoint is not None and (refusal := wh.refuses_test(endpoint.target)):
            return fail(refusal)
        if endpoint is None or not await webhooks.send_test(storage, args.id, time.time()):
            return fail(f"no webhook endpoint {args.id} (see: webhooks list)")
        print(f"Queued a webhook.test event for endpoint {args.id}; a running server sends it.")
        return 0

    return with_storage(settings, work)


def _redeliver(args: argparse.Namespace, settings: Settings) -> int:
    """All of an endpoint's failed events at once: the dashboard's button is per event, and
    it lists only the latest (`webhooks.RECENT`)."""

    async def work(storage: Storage) -> int:
        endpoint = await webhooks.endpoint(storage, args.id)
        if endpoint is None:
            return fail(f"no webhook endpoint {args.id} (see: webhooks list)")
        if endpoint.disabled_at is not None:
            return fail(
                f"endpoint {args.id} is disabled ({endpoint.disabled_reason}): its events would "
                "fail again at once (add the receiver again: webhooks add)"
            )
        n = await webhooks.redeliver_failed(storage, args.id, time.time())
        print(f"{n} failed event(s) of endpoint {args.id} will be tried again, under their own")
        print("webhook-id, for another day; a running server sends them.")
        return 0

    return with_storage(settings, work)
