"""The webhook job: delivers the outbox's `webhook` rows, at least once, signed (Standard
Webhooks), to addresses checked after every resolution.

Each attempt:

1. resolves the endpoint's host and refuses unless *every* address is public (or the endpoint
   was added with `--allow-private`), then connects to the address it checked, never resolving
   again (a DNS answer that changes between the check and the connection, DNS rebinding, gains
   nothing); TLS still verifies the certificate against the host name;
2. signs anew: `webhook-timestamp` is the attempt's time, `webhook-signature` one `v1,` per valid
   secret (two while a rotation lasts); `webhook-id` is the event's, the same on every attempt;
3. sends one HTTP/1.1 POST (h11, `Connection: close`), the whole attempt cut off after
   `ATTEMPT_TIMEOUT` (15 s), reads the status and at most `MAX_ANSWER` bytes of the answer
   (a huge or endless body is cut off), and never follows a redirect: a 3xx is a failure.

A 2xx delivers: the row goes and its metadata is kept in `webhook_deliveries`. `410 Gone`
disables the endpoint (its events are failed, kept for the redeliver button). Anything else is
tried again after a jittered backoff from 5 s, doubling to an hour, until the row is a day old
(`PATIENCE`); then it is failed for good and kept `FAILED_KEPT` (7 days) for the dashboard's
redeliver button, without personal data in clear (sealed data stays sealed), then purged.

Rows are claimed as leases (`outbox.claim`, 60 s, longer than an attempt): several workers or
hosts never deliver one event at once, and one that dies mid-delivery leaves the row to be
delivered again once its lease ends, with the same `webhook-id` (receivers deduplicate on it).
The rows of a batch are sent concurrently (they are network waits) and written back in one
transaction.

On a sealed server a row keeps its event in a box (`events._row`), opened here just before
sending (`WebhookJob.open_event`), never written back opened; its times stay to the hour: a
retry is due at the first full hour after its backoff (an exact due time, seconds after the
signature, would date it), and its delivery or failure is recorded to the hour too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import h11

from server.domain import webhooks as wh
from server.domain.sealing import hour_after
from server.store import outbox, webhooks
from server.store.clock import Clock, Stopping, pause
from server.store.events import TOPIC
from server.store.storage import Storage

logger = logging.getLogger("petition_widget.webhooks")

ATTEMPT_TIMEOUT = 15.0  # seconds for a whole attempt: resolve, connect, send, read the answer
MAX_ANSWER = 4096  # bytes of an answer's body read, at most
PATIENCE = 86_400  # seconds an event is retried before it fails for good
FAILED_KEPT = 7 * 86_400  # seconds a failed event is kept for the redeliver button
LEASE = 60.0
BATCH = 50  # rows claimed at once, sent concurrently (each attempt at most 15 s of a 60 s lease)
IDLE = 5.0  # seconds between looks when nothing is due
PURGE_EVERY = 600.0
USER_AGENT = "petition-widget-webhooks"

#: host, port → the addresses it resolves to.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclasses.dataclass(frozen=True)
class WebhookJob:
    """What the webhook job is given by the wiring (tests give their own resolver, TLS context
    and wall clock)."""

    resolver: Resolver = resolve
    # `webhook-timestamp` is wall time: receivers compare it with theirs. Backoffs run on the
    # job's clock, which tests move by hours.
    wall: Callable[[], float] = time.time
    tls: ssl.SSLContext | None = None  # None: the system's trust store
    # Opens a sealed row's box (`EmailHasher.open_mail`): None when the key does not.
    open_event: Callable[[str], dict[str, str] | None] = lambda _: None


class Refused(Exception):
    """An attempt not made: the URL or an address breaks a rule (`rule` says which)."""

    def __init__(self, kind: str, rule: str) -> None:
        super().__init__(kind)
        self.kind, self.rule = kind, rule


class Failed(Exception):
    """An attempt that got an answer other than 2xx (`status`), or none."""

    def __init__(self, kind: str, status: int | None = None) -> None:
        super().__init__(kind)
        self.kind, self.status = kind, status


@dataclasses.dataclass(frozen=True)
class Request:
    headers: list[tuple[str, str]]
    body: bytes


def compose(endpoint: webhooks.Endpoint, payload: dict[str, Any], timestamp: int) -> Request:
    """One attempt's request: the body for the endpoint's format, signed with every valid
    secret at `timestamp`."""
    data = payload.get("data", {})
    if endpoint.format == wh.OSDI and payload["type"] == wh.COUNTED:
        content, body = "application/hal+json", wh.osdi_body(data)
    else:
        content = "application/json"
        body = wh.body(payload["type"], payload["timestamp"], data, payload["sequence"])
    msg_id = payload["event_id"]
    headers = [
        ("webhook-id", msg_id),
        ("webhook-timestamp", str(timestamp)),
        ("webhook-signature", wh.signature_header(endpoint.secrets(timestamp), msg_id,
                                                  timestamp, body)),
        ("webhook-sequence", str(payload["sequence"])),
        ("content-type", content),
        ("user-agent", USER_AGENT),
    ]  # fmt: skip
    if endpoint.format == wh.OSDI and endpoint.osdi_token:
        headers.append(("OSDI-API-Token", endpoint.osdi_token))
    return Request(headers, body)


async def checked_address(url: wh.Url, allow_private: bool, resolver: Resolver = resolve) -> str:
    """The address to connect to: the host resolved now, every address allowed."""
    try:
        addresses = await resolver(url.host, url.port)
    except OSError:
        raise Failed("unresolved") from None
    if not addresses:
        raise Failed("unresolved")
    for address in addresses:
        problem = wh.address_problem(address, allow_private=allow_private)
        if problem is not None:
            raise Refused("private_address", problem)
    return addresses[0]


async def post(
    url: wh.Url, address: str, request: Request, tls: ssl.SSLContext | None = None
) -> int:
    """POST to `address` (already checked) for `url`; the answer's status. At most
    `MAX_ANSWER` bytes of its body are read."""
    context = None
    if url.scheme == "https":
        context = tls or ssl.create_default_context()
    reader, writer = await asyncio.open_connection(
        address, url.port, ssl=context, server_hostname=url.host if context else None
    )
    try:
        conn = h11.Connection(our_role=h11.CLIENT)
        host = url.host if ":" not in url.host else f"[{url.host}]"
        default = 443 if url.scheme == "https" else 80
        headers = [
            ("host", host if url.port == default else f"{host}:{url.port}"),
            *request.headers,
            ("content-length", str(len(request.body))),
            ("connection", "close"),
        ]
        out = conn.send(h11.Request(method="POST", target=url.target, headers=headers))
        out += conn.send(h11.Data(data=request.body)) + conn.send(h11.EndOfMessage())
        writer.write(out)
        await writer.drain()
        status, read = None, 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                chunk = await reader.read(4096)
                conn.receive_data(chunk)  # b"" tells h11 the connection closed
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                read += len(event.data)
                if read >= MAX_ANSWER:
                    break  # enough: a receiver's answer is only looked at for its status
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        if status is None:
            raise Failed("no_answer")
        return status
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


@dataclasses.dataclass
class _Result:
    row: outbox.OutboxRow
    status: int | None = None
    kind: str = ""
    delivered: bool = False
    give_up: bool = False
    disable: bool = False


async def attempt(
    job: WebhookJob, endpoint: webhooks.Endpoint | None, row: outbox.OutboxRow, now: float
) -> _Result:
    """One attempt at one row, never raising: what became of it."""
    result = _Result(row)
    if endpoint is None:
        result.give_up, result.kind = True, "no_endpoint"
        return result
    if endpoint.disabled_at is not None:
        result.give_up, result.kind = True, "disabled"
        return result
    if now - row.created_at > PATIENCE:
        result.give_up, result.kind = True, "expired"
        return result
    event = opened(job, row.payload)
    if event is None:  # sealed under another EMAIL_HASH_KEY: it can never be sent
        result.give_up, result.kind = True, "unopened"
        return result
    if endpoint.format == wh.OSDI and event.get("type") != wh.COUNTED:
        # Never sent: an OSDI endpoint hears of counted signatures only (a `webhook.test`
        # queued for one by an older version would reach the CRM as a made-up person).
        result.give_up, result.kind = True, "not_for_osdi"
        return result
    record = endpoint.format == wh.OSDI
    if record and not event.get("data", {}).get("email"):
        # Failed for good, it lost its clear address (`_kept`); redelivered, it can be no OSDI
        # record, and composing one would raise out of the whole batch.
        result.give_up, result.kind = True, "no_personal_data"
        return result
    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT):
            url = wh.check_url(endpoint.url, allow_http=endpoint.allow_http)
            address = await checked_address(url, endpoint.allow_private, job.resolver)
            request = compose(endpoint, event, int(job.wall()))
            status = await post(url, address, request, job.tls)
    except wh.BadEndpoint:
        result.kind = "bad_url"
    except Refused as refused:
        result.kind = refused.kind
        logger.warning("webhook %d not sent: %s", endpoint.id, refused.rule)
    except Failed as failed:
        result.kind = failed.kind
    except TimeoutError:
        result.kind = "timeout"
    except (OSError, ssl.SSLError, h11.ProtocolError) as exc:
        result.kind = type(exc).__name__
    else:
        result.status = status
        if 200 <= status < 300:
            result.delivered = True
        elif status == 410:
            result.give_up = result.disable = True
            result.kind = "gone"
        elif 300 <= status < 400:
            result.kind = f"redirect_{status}"  # never followed: a redirect is a failure
            logger.warning("webhook %d not delivered: a redirect counts as a failure", endpoint.id)
        else:
            result.kind = f"http_{status}"
    return result


_DELIVERED = """
INSERT INTO webhook_deliveries (endpoint_id, event_id, type, sequence, attempts, status,
    created_at, delivered_at)
VALUES (:endpoint, :event, :type, :sequence, :attempts, :status, :created, :now)"""
_RETRY = """
UPDATE outbox SET available_at = :at, claimed_until = NULL, last_error = :error
WHERE id = :id AND attempts = :attempts"""
# A failed event keeps its data for the redeliver button, but no personal field in clear.
_FAIL = """
UPDATE outbox SET payload = :payload, failed_at = :now, available_at = :never,
    claimed_until = NULL, last_error = :kind
WHERE id = :id"""


def opened(job: WebhookJob, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The whole event of a row: its payload, or what its box holds (a sealed server's)."""
    box = payload.get("box")
    if not isinstance(box, str):
        return payload
    secrets = job.open_event(box)
    if secrets is None or "event" not in secrets:
        return None
    event: dict[str, Any] = json.loads(secrets["event"])
    return event


def _kept(payload: dict[str, Any]) -> str:
    data = payload.get("data", {})
    if wh.has_clear_personal(data):
        payload = {**payload, "data": wh.without_personal(data), "stripped": True}
    return json.dumps(payload)


async def settle(storage: Storage, results: list[_Result], now: float,
                 rng: random.Random | None = None) -> None:  # fmt: skip
    """What became of a batch, in one transaction."""
    async with storage.write() as tx:
        for r in results:
            row, payload = r.row, r.row.payload  # as stored: a sealed one stays in its box
            endpoint_id = payload.get("endpoint_id")
            # Sealed (see the module), the times written back are to the hour.
            hourly = "box" in payload
            if r.delivered:
                await tx.execute(
                    _DELIVERED,
                    {"endpoint": endpoint_id, "event": payload["event_id"],
                     "type": payload["type"], "sequence": payload["sequence"],
                     "attempts": row.attempts, "status": r.status, "created": row.created_at,
                     "now": hour_after(int(now)) if hourly else int(now)},
                )  # fmt: skip
                await tx.execute("DELETE FROM outbox WHERE id = :id", {"id": row.id})
                continue
            at = now + outbox.backoff(row.attempts, rng=rng)
            if r.give_up or at - row.created_at > PATIENCE:
                values = {"id": row.id, "payload": _kept(payload),
                          "now": hour_after(int(now)) if hourly else int(now),
                          "never": outbox.NEVER, "kind": r.kind or "failed"}  # fmt: skip
                await tx.execute(_FAIL, values)
                if r.disable and endpoint_id is not None:
                    await webhooks.disable(tx, endpoint_id, now, r.kind)
                continue
            due = hour_after(math.ceil(at)) if hourly else math.ceil(at)
            values = {"id": row.id, "at": due, "error": r.kind,
                      "attempts": row.attempts}  # fmt: skip
            await tx.execute(_RETRY, values)


async def deliver(
    storage: Storage,
    clock: Clock,
    job: WebhookJob,
    stopping: Stopping,
    *,
    batch: int = BATCH,
    rng: random.Random | None = None,
) -> None:
    """Deliver `webhook` rows until `stopping` is set (the job `webhooks` of every process)."""
    handled = False
    while not stopping.is_set():
        now = clock.now()
        rows = await outbox.claim(storage, TOPIC, batch, LEASE, now)
        if not rows:
            if handled:
                handled = False
                await storage.engine.scrub()  # delivered payloads leave the files (WAL, dead rows)
            next_due = await storage.database.fetch_val(
                "SELECT MIN(available_at) FROM outbox WHERE topic = :t AND failed_at IS NULL",
                {"t": TOPIC},
            )
            wait = IDLE if next_due is None else max(0.1, min(IDLE, next_due - clock.now()))
            if await pause(clock, wait, stopping):
                return
            continue
        handled = True
        ids = {int(e) for r in rows if (e := _endpoint_of(r)) is not None}
        found = {e.id: e for e in await webhooks.endpoints(storage) if e.id in ids}
        results = await asyncio.gather(
            *(attempt(job, found.get(_endpoint_of(r) or -1), r, clock.now()) for r in rows)
        )
        for r in results:
            if not r.delivered:
                logger.info(
                    "webhook row %d not delivered (%s) on attempt %d",
                    r.row.id, r.kind, r.row.attempts,
                )  # fmt: skip
        await settle(storage, list(results), clock.now(), rng)


def _endpoint_of(row: outbox.OutboxRow) -> int | None:
    value = row.payload.get("endpoint_id")
    return value if isinstance(value, int) else None
