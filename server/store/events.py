"""Webhook events, written inside the transaction of the change that causes them.

Each event becomes one outbox row (topic `webhook`) per endpoint that may receive it, with
that endpoint's next `sequence` number and a random `webhook-id`, so it exists if and only if
the change committed, and a counted signature is never missing from a CRM. What each endpoint
may receive is the domain's decision (`domain/webhooks`); this module reads the facts and
writes the rows. The delivery job (`store/webhook_job.py`) sends them.

Callers, each passing its own open transaction `tx` (of `storage.write()`):

- `signature_counted(tx, signature_row_id, now)`: a signature starts to count. Called by
  `confirmations.confirm`; a signature of a `"none"` petition is announced by the signing plan
  itself (`plan_counted`, in `sign_plan`). A quarantine's *restore* calls it too.
- `signatures_withdrawn(tx, signature_row_ids, reason, now)`: signatures stop counting, reason
  `withdrawn` (a link, `signatures remove`), `retention` or `invalidated` (a quarantine's
  *invalidate*). Call it while the rows still exist (before a DELETE): it reads them.
- `check_milestones(tx, petition_id, total, now, steps=None)`: after a count went up; fires
  25/50/75/100 % of the stored goal, once per milestone and goal value, and each `auto_goal`
  step reached (`steps`: the caller's `auto_goal_steps`, or read here when None).
- `milestone(tx, petition_id, signatures, goal, milestone, now)`: one milestone, once.
- `petition_closed(tx, petition_id, now)`; `goal_changed(tx, petition_id, goal, total, now)`
  (the milestones a new goal has already passed are recorded without an event, steps too).

An `auto_goal` petition's steps (`domain/goals.steps_reached`: 200, 500, 1,000, ... above the
stored goal) are milestones too: a step reached is 100 % of the goal it was, so its event says
`goal` = the step and `milestone` = 100, once per step like any other (and a stored goal that
equals a step is the same milestone, not a second one).

Nothing here is written when a petition has no endpoint: the signing path then pays only an
`EXISTS` inside the count it reads anyway (`signatures._PETITION_TOTAL`).
With sealing on, no row holds a signer's personal fields in clear: only `data.sealed`. And
on a sealed server (`Transaction.sealed_events`) a row keeps the whole event in a box
(`EmailHasher.seal_mail`, opened by the job just before sending), its times to the hour, and in
clear only what the job and the dashboard read: endpoint, `event_id`, type, sequence, and for
a counted event its signature's keyed tag (`EmailHasher.event_tag`), by which a withdrawal
deletes it. Its `signature_id`, exact `timestamp`, partner and country would otherwise join the
row to its signature and date it to the second.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Sequence
from typing import Any

from server.domain import goals, sealing
from server.domain import webhooks as wh
from server.domain.sealing import EmailHasher
from server.domain.signatures import NewSignature
from server.store.engine import Many, Statement, Transaction

TOPIC = "webhook"

_TARGETS = """
SELECT id, partner_id, format, public_key FROM webhook_endpoints
WHERE petition_id = :p AND disabled_at IS NULL ORDER BY id"""
# The signing plan receives one row per statement: it reads the endpoints one at a time.
_NEXT_TARGET = """
SELECT id, partner_id, format, public_key FROM webhook_endpoints
WHERE petition_id = :p AND disabled_at IS NULL AND id > :after ORDER BY id LIMIT 1"""
_ALL_TARGETS = """
SELECT petition_id, id, partner_id, format, public_key FROM webhook_endpoints
WHERE disabled_at IS NULL ORDER BY id"""
_NEXT_SEQUENCE = (
    "UPDATE webhook_endpoints SET sequence = sequence + :n WHERE id = :id RETURNING sequence"
)
_QUEUE = """
INSERT INTO outbox (topic, payload, created_at, available_at, endpoint_id)
VALUES ('webhook', :payload, :now, :now, :endpoint_id)"""
_FACTS = """
SELECT s.id, s.ref, p.slug, s.partner_id, pa.code, s.created_at, s.signed_at, s.country,
    s.lang, s.consent_organiser, s.consent_partner, s.consent_version, c.text, s.name, s.email,
    s.sealed, s.webhook_sealed, s.consent_name_to_target
FROM signatures s JOIN petitions p ON p.id = s.petition_id
LEFT JOIN partners pa ON pa.id = s.partner_id
LEFT JOIN consent_texts c ON c.version = s.consent_version
WHERE s.id = :id"""
_MILESTONES_DONE = "SELECT COUNT(*) FROM webhook_milestones WHERE petition_id = :p AND goal = :g"
_FIRED = """
SELECT COUNT(*) FROM webhook_milestones WHERE petition_id = :p AND goal = :g AND milestone = :m"""
_GOAL = "SELECT goal, slug, document FROM petitions WHERE id = :p"
# A step reached is the whole of the goal it was (see the module).
STEP_MILESTONE = wh.MILESTONES[-1]
_MARK_MILESTONE = """
INSERT INTO webhook_milestones (petition_id, goal, milestone, reached_at)
VALUES (:p, :g, :m, :now) ON CONFLICT (petition_id, goal, milestone) DO NOTHING
RETURNING milestone"""


_FORGET_COUNTED = """
DELETE FROM outbox WHERE topic = 'webhook' AND (claimed_until IS NULL OR claimed_until < :now)
    AND (payload LIKE :pattern OR payload LIKE :tagged)"""
# What a sealed row keeps in clear (`_row`); the rest of the event is in its box.
_CLEAR = ("endpoint_id", "event_id", "type", "sequence")


def _payload_patterns(signature_id: str, box: EmailHasher | None) -> dict[str, str]:
    """What a counted event's payload holds of its signature (`json.dumps`' default spacing;
    ids are hex or `sig_<n>`, tags hex, so no wildcard but `_`, which matches itself too): in
    clear, its `signature_id`; sealed, its tag (only counted events carry one). Both, as rows
    queued before the server was sealed may still wait."""
    pattern = f'%"type": "{wh.COUNTED}"%"signature_id": "{signature_id}"%'
    tagged = pattern if box is None else f'%"signature": "{box.event_tag(signature_id)}"%'
    return {"pattern": pattern, "tagged": tagged}


def signature_ref(ref: str | None, row_id: int) -> str:
    """A signature's `signature_id` in events: its random `ref` (the same in every event about
    it), or, for one made before refs existed, its row id. Never its email key."""
    return ref if ref else f"sig_{row_id}"


async def targets(tx: Transaction, petition_id: int) -> list[wh.Target]:
    rows = await tx.fetch_all(_TARGETS, {"p": petition_id})
    return [wh.Target(r[0], r[1], r[2], r[3]) for r in rows]


async def _queue(
    tx: Transaction, target: wh.Target, type_: str, data: dict[str, Any], now: float
) -> None:
    sequence = await tx.fetch_val(_NEXT_SEQUENCE, {"n": 1, "id": target.id})
    await tx.execute(_QUEUE, _row(target.id, type_, data, int(sequence), now, tx.sealed_events))


def _row(
    endpoint_id: int,
    type_: str,
    data: dict[str, Any],
    sequence: int,
    now: float,
    box: EmailHasher | None = None,
) -> dict[str, Any]:
    """An outbox row's values; with `box` (a sealed server), sealed as the module says, and
    due at the start of this hour, that is at once."""
    payload = {
        "endpoint_id": endpoint_id,
        "event_id": wh.new_event_id(),
        "type": type_,
        "timestamp": int(now),
        "sequence": sequence,
        "data": data,
    }
    if box is None:
        return {"payload": json.dumps(payload), "now": int(now), "endpoint_id": endpoint_id}
    kept = json.dumps(sealed_payload(payload, box))
    return {"payload": kept, "now": sealing.hour(int(now)), "endpoint_id": endpoint_id}


def sealed_payload(payload: dict[str, Any], box: EmailHasher) -> dict[str, Any]:
    """What a sealed server's row keeps of the event `payload` (see the module); `seal` makes
    the rows of a server that was not sealed so too."""
    kept: dict[str, Any] = {k: payload[k] for k in _CLEAR if k in payload}
    kept["box"] = box.seal_mail({"event": json.dumps(payload)})
    signature_id = payload.get("data", {}).get("signature_id")
    if payload.get("type") == wh.COUNTED and signature_id:
        kept["signature"] = box.event_tag(signature_id)
    return kept


async def _facts(tx: Transaction, row_id: int) -> wh.SignatureFacts | None:
    r = await tx.fetch_one(_FACTS, {"id": row_id})
    if r is None:
        return None
    sealed = r[15] is not None or r[16] is not None
    boxes = {int(k): v for k, v in json.loads(r[16]).items()} if r[16] else {}
    # `created_at` is when it started to count; `signed_at` when it was sent (confirmed ones).
    signed_at, confirmed_at = (r[6], r[5]) if r[6] is not None else (r[5], None)
    return wh.SignatureFacts(
        signature_id=signature_ref(r[1], r[0]), petition=r[2], partner_id=r[3],
        partner_code=r[4], signed_at=int(signed_at),
        confirmed_at=None if confirmed_at is None else int(confirmed_at), country=r[7],
        lang=r[8], consent_organiser=bool(r[9]), consent_partner=bool(r[10]),
        consent_version=r[11], consent_text=r[12] or "",
        consent_name_to_target=bool(r[17]),
        name=None if sealed else r[13], email=None if sealed or not r[14] else r[14],
        boxes=boxes,
    )  # fmt: skip


async def signature_counted(tx: Transaction, signature_row_id: int, now: float) -> int:
    """Announce that the signature `signature_row_id` counts (see the module); returns the
    rows written."""
    row = await tx.fetch_one(
        "SELECT petition_id FROM signatures WHERE id = :id", {"id": signature_row_id}
    )
    if row is None:
        return 0
    found = await targets(tx, row[0])
    if not found:
        return 0
    facts = await _facts(tx, signature_row_id)
    assert facts is not None
    written = 0
    for target in found:
        data = wh.counted_data(target, facts)
        if data is not None:
            await _queue(tx, target, wh.COUNTED, data, now)
            written += 1
    return written


async def signatures_withdrawn(
    tx: Transaction, signature_row_ids: Iterable[int], reason: str, now: float
) -> int:
    """Announce that these signatures stopped counting, for `reason` (`withdrawn`,
    `invalidated`, `retention`), to every endpoint that heard of them counting. Call it while
    the rows exist. Returns the rows written."""
    ids = list(signature_row_ids)
    if reason not in wh.REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    written = 0
    by_petition: dict[int, list[wh.Target]] = {}
    for row_id in ids:
        r = await tx.fetch_one(
            "SELECT s.petition_id, s.ref, p.slug, s.partner_id, pa.code, s.consent_partner "
            "FROM signatures s JOIN petitions p ON p.id = s.petition_id "
            "LEFT JOIN partners pa ON pa.id = s.partner_id WHERE s.id = :id",
            {"id": row_id},
        )
        if r is None:
            continue
        signature_id = signature_ref(r[1], row_id)
        # Its counted events not delivered yet go: they hold its data, and would reach a CRM
        # after the signer withdrew (one already in flight may still arrive, then this one).
        patterns = _payload_patterns(signature_id, tx.sealed_events)
        await tx.execute(_FORGET_COUNTED, {**patterns, "now": int(now)})
        if r[0] not in by_petition:
            by_petition[r[0]] = await targets(tx, r[0])
        for target in by_petition[r[0]]:
            data = wh.withdrawn_data(
                target, signature_id=signature_id, petition=r[2],
                partner_id=r[3], partner_code=r[4], consent_partner=bool(r[5]), reason=reason,
            )  # fmt: skip
            if data is not None:
                await _queue(tx, target, wh.WITHDRAWN, data, now)
                written += 1
    return written


async def _plain(
    tx: Transaction, petition_id: int, type_: str, data: dict[str, Any], now: float
) -> int:
    written = 0
    for target in await targets(tx, petition_id):
        shaped = wh.plain_data(target, type_, data)
        if shaped is not None:
            await _queue(tx, target, type_, shaped, now)
            written += 1
    return written


async def milestone(
    tx: Transaction, petition_id: int, signatures: int, goal: int, reached: int, now: float
) -> bool:
    """Fire `petition.milestone` for `reached` (a percentage of `goal`, or an auto-goal step's
    count) unless it fired before for this goal; returns whether it fired now."""
    new = await tx.fetch_val(
        _MARK_MILESTONE, {"p": petition_id, "g": goal, "m": reached, "now": int(now)}
    )
    if new is None:
        return False
    data = {"petition": await _slug(tx, petition_id), "signatures": signatures, "goal": goal,
            "milestone": reached}  # fmt: skip
    await _plain(tx, petition_id, wh.MILESTONE, data, now)
    return True


def steps_of(document: str, total: int, goal: int) -> list[int]:
    """The `auto_goal` steps `total` has reached, for a petition stored as `document` (its
    JSON); [] when the petition has no `auto_goal`."""
    if not json.loads(document).get("auto_goal"):
        return []
    return goals.steps_reached(total, goal)


async def auto_goal_steps(tx: Transaction, petition_id: int, total: int) -> list[int]:
    """`steps_of` for a stored petition, read in `tx` (its goal and file as they are now)."""
    row = await tx.fetch_one(_GOAL, {"p": petition_id})
    return [] if row is None else steps_of(row[2], total, int(row[0]))


async def check_milestones(
    tx: Transaction,
    petition_id: int,
    total: int,
    now: float,
    steps: Sequence[int] | None = None,
) -> list[tuple[int, int]]:
    """After a count went up to `total`: the milestones of the stored goal reached and not
    fired yet fire now (every one reached, so a crossing two concurrent writers both missed
    fires with the next signature), then the `auto_goal` steps reached (`steps`, absolute
    counts; None: `auto_goal_steps`), each once. Only for a petition with endpoints. Returns
    the (goal, milestone) pairs fired."""
    if not await targets(tx, petition_id):
        return []
    row = await tx.fetch_one(_GOAL, {"p": petition_id})
    if row is None:
        return []
    goal = int(row[0])
    due = wh.reached(total, goal)
    fired = []
    if due and int(await tx.fetch_val(_MILESTONES_DONE, {"p": petition_id, "g": goal})) < len(due):
        for percent in due:
            if await milestone(tx, petition_id, total, goal, percent, now):
                fired.append((goal, percent))
    for step in steps_of(row[2], total, goal) if steps is None else steps:
        if total >= step and await milestone(tx, petition_id, total, step, STEP_MILESTONE, now):
            fired.append((step, STEP_MILESTONE))
    return fired


async def goal_changed(
    tx: Transaction, petition_id: int, goal: int, total: int, now: float
) -> None:
    """A new goal: its milestones already passed are recorded as fired, without an event (a
    raised goal announces what is still ahead, not a burst of past percentages), and so are
    the `auto_goal` steps already passed."""
    passed = [(goal, percent) for percent in wh.reached(total, goal)]
    passed += [(step, STEP_MILESTONE) for step in await auto_goal_steps(tx, petition_id, total)]
    for reached_goal, reached in passed:
        await tx.execute(_MARK_MILESTONE, {"p": petition_id, "g": reached_goal, "m": reached,
                                           "now": int(now)})  # fmt: skip


async def petition_closed(tx: Transaction, petition_id: int, now: float) -> int:
    total = await tx.fetch_val(
        "SELECT COALESCE(SUM(n), 0) FROM counters WHERE petition_id = :p", {"p": petition_id}
    )
    data = {"petition": await _slug(tx, petition_id), "signatures": int(total)}
    return await _plain(tx, petition_id, wh.CLOSED, data, now)


async def test_event(tx: Transaction, endpoint_id: int, now: float) -> bool:
    """Queue a `webhook.test` for the endpoint; False when there is none, or it gets no test
    (an OSDI endpoint: `wh.refuses_test`, which the CLI says before calling this)."""
    row = await tx.fetch_one(
        "SELECT id, partner_id, format, public_key, petition_id FROM webhook_endpoints "
        "WHERE id = :id",
        {"id": endpoint_id},
    )
    if row is None:
        return False
    target = wh.Target(row[0], row[1], row[2], row[3])
    data = wh.plain_data(
        target, wh.TEST, {"petition": await _slug(tx, row[4]), "endpoint_id": endpoint_id}
    )
    if data is None:
        return False
    await _queue(tx, target, wh.TEST, data, now)
    return True


async def _slug(tx: Transaction, petition_id: int) -> str:
    return str(await tx.fetch_val("SELECT slug FROM petitions WHERE id = :p", {"p": petition_id}))


# The signing plan's part -------------------------------------------------------------------


def plan_counted(
    counted: Sequence[tuple[NewSignature, int]], now: int, box: EmailHasher | None = None
) -> Generator[Statement | Many, Any, None]:
    """Statements of a `sign_plan` for signatures of a `"none"` petition that counted in this
    group (each with its petition's total after the group): one sequence bump per endpoint and
    one insert of all rows, then the milestones. The endpoints are read here, in the signing
    transaction (`_NEXT_TARGET`), not taken from the registry, which reloads them only every
    `COUNT_REFRESH`: one added a moment ago hears of these signatures, one disabled does not
    (the per-endpoint boxes of a sealed server are still made at submission, for the
    registry's endpoints: `NewSignature.webhooks`). `box`: the engine's `sealed_events`
    (`_row`)."""
    found: dict[int, list[wh.Target]] = {}
    for petition_id in sorted({s.petition_id for s, _ in counted}):
        found[petition_id] = []
        after = 0
        while (row := (yield _NEXT_TARGET, {"p": petition_id, "after": after})) is not None:
            found[petition_id].append(wh.Target(int(row[0]), row[1], row[2], row[3]))
            after = int(row[0])
    per_target: dict[int, tuple[wh.Target, list[tuple[str, dict[str, Any]]]]] = {}
    for s, _ in counted:
        facts = _new_facts(s, now)
        for target in found[s.petition_id]:
            data = wh.counted_data(target, facts)
            if data is not None:
                per_target.setdefault(target.id, (target, []))[1].append((wh.COUNTED, data))
    rows = []
    for target_id, (_, events) in sorted(per_target.items()):
        last = yield _NEXT_SEQUENCE, {"n": len(events), "id": target_id}
        if last is None:
            continue  # removed meanwhile
        first = int(last[0]) - len(events) + 1
        for i, (type_, data) in enumerate(events):
            rows.append(_row(target_id, type_, data, first + i, now, box))
    if rows:
        yield Many(_QUEUE, rows)
    totals = {s.petition_id: total for s, total in counted if found[s.petition_id]}
    for petition_id, total in sorted(totals.items()):
        petition = yield "SELECT goal, slug FROM petitions WHERE id = :p", {"p": petition_id}
        goal, slug = int(petition[0]), str(petition[1])
        # Reached, perhaps not fired yet: one read each tells when all of them have (in a
        # petition past its goal, most groups), so that most groups write nothing here.
        due = [(goal, percent) for percent in wh.reached(total, goal)]
        if due and int((yield _MILESTONES_DONE, {"p": petition_id, "g": goal})[0]) >= len(due):
            due = []
        # Whether it has steps, from the signatures (the registry's entry): its file is not
        # read here, on the signing path.
        auto_goal = any(s.auto_goal for s, _ in counted if s.petition_id == petition_id)
        steps = goals.steps_reached(total, goal) if auto_goal else []
        # Steps are marked lowest first: the highest one marked means every lower one is too.
        if steps and int((yield _FIRED, _marked(petition_id, steps[-1], STEP_MILESTONE))[0]):
            steps = []
        for reached_goal, reached in due + [(step, STEP_MILESTONE) for step in steps]:
            if (
                yield _MARK_MILESTONE, {**_marked(petition_id, reached_goal, reached), "now": now}
            ) is None:
                continue
            data = {"petition": slug, "signatures": total, "goal": reached_goal,
                    "milestone": reached}  # fmt: skip
            for target in found[petition_id]:
                shaped = wh.plain_data(target, wh.MILESTONE, data)
                if shaped is None:
                    continue
                last = yield _NEXT_SEQUENCE, {"n": 1, "id": target.id}
                if last is not None:
                    yield _QUEUE, _row(target.id, wh.MILESTONE, shaped, int(last[0]), now, box)


def _marked(petition_id: int, goal: int, milestone: int) -> dict[str, Any]:
    return {"p": petition_id, "g": goal, "m": milestone}


def _new_facts(s: NewSignature, now: int) -> wh.SignatureFacts:
    sealed = s.sealed is not None
    return wh.SignatureFacts(
        signature_id=s.ref, petition=s.petition_slug, partner_id=s.partner_id,
        partner_code=s.partner_code, signed_at=sealing.hour(now) if sealed else now,
        confirmed_at=None, country=s.signer.country, lang=s.lang,
        consent_organiser=s.signer.consent_organiser, consent_partner=s.signer.consent_partner,
        consent_version=s.consent.version, consent_text=s.consent.text,
        consent_name_to_target=s.signer.consent_name_to_target,
        name=None if sealed else s.signer.name, email=None if sealed else s.signer.email,
        boxes=dict(s.sealed.webhooks) if s.sealed is not None else {},
    )  # fmt: skip


def webhook_sealed(s: NewSignature) -> str | None:
    """The JSON a pending (or counted) row keeps of its per-endpoint boxes."""
    if s.sealed is None or not s.sealed.webhooks:
        return None
    return json.dumps({str(k): v for k, v in s.sealed.webhooks})


async def all_targets(tx: Any) -> dict[int, tuple[wh.Target, ...]]:
    """Every enabled endpoint by petition, for the registry (`tx` may be the database)."""
    found: dict[int, list[wh.Target]] = {}
    for r in await tx.fetch_all(_ALL_TARGETS):
        found.setdefault(r[0], []).append(wh.Target(r[1], r[2], r[3], r[4]))
    return {p: tuple(ts) for p, ts in found.items()}
