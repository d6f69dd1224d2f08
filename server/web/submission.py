"""Signing a petition, orchestrated: the thin step between a decoded request and its answer.

The JSON API and the plain HTML form both call `sign`, and only shape its `Outcome` into a
response. The decision is the domain's (`server.domain.decision`); here it is handed to the
group-commit writer, and every refusal becomes an outcome whose status comes from the one
table in `refusals`. A duplicate signer gets exactly the answer a new signer gets, and so does
one quarantined by the aggregate limit, so no response tells whether an address has signed or
whether a network is over its limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from starlette.types import Scope

from server.domain import abuse
from server.domain import challenge as work
from server.domain.decision import decide
from server.domain.errors import PetitionClosed, Refusal, StorageUnavailable, TokenUsed
from server.domain.form_tokens import Claims, TokenError
from server.domain.links import Link, new_ref
from server.domain.petitions import Entry
from server.domain.signatures import Decoy
from server.domain.validation import FieldErrors
from server.web import client_address, refusals
from server.web.services import Services

STORAGE_RETRY_AFTER = 5  # seconds a client should wait when storage is unavailable


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: int
    count: int | None = None  # the petition's count, on success
    error: str | None = None  # the API error code otherwise
    fields: dict[str, tuple[str, dict[str, Any]]] | None = None  # per-field message keys
    retry_after: int | None = None
    # The form token's claims when it was genuine: the form is shown again with its partner
    # and language, without decoding the token a second time.
    claims: Claims | None = None
    # The link that withdraws the signature this submission created (a decoy that removes
    # nothing when it created none): for the answer to this submission only.
    withdraw_token: str | None = None

    @property
    def signed(self) -> bool:
        return self.status == 201

    @property
    def confirmation_sent(self) -> bool:
        """Accepted, and waiting for its signer to confirm from a mail."""
        return self.status == 202

    @classmethod
    def refused(cls, refusal: Refusal, claims: Claims | None = None) -> Outcome:
        return cls(
            refusals.status_of(refusal.code),
            error=refusal.code,
            fields=refusal.errors if isinstance(refusal, FieldErrors) else None,
            retry_after=refusal.retry_after,
            claims=refusal.claims
            if isinstance(refusal, TokenError | FieldErrors | work.ChallengeRequired)
            else claims,
        )


def challenged(services: Services, entry: Entry, *, force: bool = False) -> bool:
    """Whether a submission to `entry` must carry a proof of work now: the petition's
    `[signing] challenge` ("on"; "auto" while its `Switch` is on), or `force` (another signal,
    such as a network over its aggregate limit) unless the petition says "off"."""
    mode = entry.petition.challenge
    return work.required(mode, services.challenge_switch, entry.id) or (force and mode != "off")


def puzzle(services: Services, token: str) -> dict[str, Any] | None:
    """The `challenge` fields of a token we just issued (None if it does not decode)."""
    claims = services.tokens.peek(token)
    if claims is None:
        return None
    return services.challenges.puzzle(claims, claims.expires_at).fields()


def is_preview(fields: Mapping[str, Any]) -> bool:
    """A submission from the dashboard's preview (its form carries `preview=1`): never
    counted, whatever its token."""
    return fields.get("preview") in ("1", 1, True)


def note_refusal(services: Services, entry: Entry, code: str) -> None:
    """Count a refusal towards "auto" (`challenge.Switch`: only the codes it counts)."""
    services.challenge_switch.note(entry.id, code)


def over_network_limit(
    services: Services, scope: Scope, entry: Entry
) -> abuse.OverNetworkLimit | None:
    """The aggregate limit's question for this request (`abuse.OverNetworkLimit`), asked by the
    decision once the submission is otherwise accepted; None while the limit is off. The
    network is worked out only then: most submissions never need it. Counted on the shared
    store (`SharedLimiter`), so the limit holds across workers and hosts."""
    limiter = services.network_limiter
    if not limiter.per_minute:
        return None

    def over() -> bool:
        address = client_address.client_address(scope, services.settings.trusted_proxies)
        return limiter.hit((client_address.network_text(address), entry.id)) > 0

    return over


async def sign(
    services: Services,
    entry: Entry,
    fields: Mapping[str, Any],
    over_limit: abuse.OverNetworkLimit | None = None,
    *,
    no_script: bool = False,
    force_challenge: bool = False,
) -> Outcome:
    """The outcome of a submission. `over_limit` (`over_network_limit`): over the aggregate
    limit, the signature is recorded quarantined and answered like any other. `no_script`: it
    is the no-JavaScript form, which waits out a challenge instead of solving it.
    `force_challenge`: ask for a challenge even where the petition's own mode would not now
    (unless it says "off")."""
    outcome = await _sign(services, entry, fields, over_limit, no_script, force_challenge)
    if outcome.error:
        note_refusal(services, entry, outcome.error)
    return outcome


async def _sign(
    services: Services,
    entry: Entry,
    fields: Mapping[str, Any],
    over_limit: abuse.OverNetworkLimit | None,
    no_script: bool,
    force_challenge: bool,
) -> Outcome:
    if is_preview(fields):
        return Outcome.refused(
            TokenError("invalid_token"), services.tokens.peek(fields.get("token"))
        )
    try:
        decision = decide(
            entry,
            services.tokens,
            fields,
            services.settings.confirm_lifetime,
            services.email_hasher,
            challenge=services.challenges
            if challenged(services, entry, force=force_challenge)
            else None,
            no_script=no_script,
            over_network_limit=over_limit,
        )
    except PetitionClosed as closed:
        # Refused before the token is looked at; its claims still word the page.
        return Outcome.refused(closed, services.tokens.peek(fields.get("token")))
    except Refusal as refusal:
        return Outcome.refused(refusal)
    claims, signature = decision.claims, decision.signature
    targets = services.registry.webhook_targets(entry.id)
    if signature is not None and targets:
        # Its webhook events are written with it (or, waiting for confirmation, its boxes
        # for the endpoints' keys are sealed with it).
        signature = dataclasses.replace(signature, webhooks=targets)
    if signature is None:
        note_refusal(services, entry, "honeypot")
    # Said before the request: the answer of a counted signature tells nothing beyond it.
    published = services.registry.count(entry)
    decoy = None
    if signature is None:  # the honeypot: its group writes and flushes, as a signer's does
        decoy = Decoy(entry.id, new_ref(), Link.new())
    try:
        # A bot caught by the honeypot goes through the writer too, recording no signature, so
        # that it waits as long as a signer does (and, where the answer carries a withdrawal
        # link, its link is stored like any other).
        count = await services.writer.submit(signature if signature is not None else decoy)
    except StorageUnavailable:
        unavailable = Refusal("storage_unavailable", retry_after=STORAGE_RETRY_AFTER)
        return Outcome.refused(unavailable, claims)
    if count is None:
        return Outcome.refused(TokenUsed(), claims)
    if entry.petition.needs_confirmation:
        # The same answer for every accepted submission: a first signer, a repeat, a bot, one
        # whose mail was not sent. Counts move when a signer confirms, never here.
        return Outcome(202, claims=claims)
    if count:
        services.registry.note_count(entry.id, count)
    withdraw = signature.withdraw if signature is not None else decoy.withdraw if decoy else None
    assert withdraw is not None  # every accepted submission of such a petition has its link
    return Outcome(201, count=published + 1, claims=claims, withdraw_token=withdraw.token)
