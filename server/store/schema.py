"""The database schema: versioned migrations, the same statements for SQLite and PostgreSQL.

Standard SQL plus `ON CONFLICT` and `RETURNING`, which both engines understand; the few type
names that differ are filled in by the engine adapter (`{pk}`). Migrations are applied in order
at start-up. Never edit one that has shipped: add another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.store.rekey import rekey_email_addresses

#: A migration step: a statement (with `{pk}` and the like filled in by the engine adapter), or
#: a function run with the migration's transaction, for what SQL alone cannot do.
Step = str | Callable[[Any], Awaitable[None]]

# Versioned migrations, applied in order at start-up. Never edit one that has shipped: add more.
MIGRATIONS: list[list[Step]] = [
    [
        """CREATE TABLE revisions (
            name TEXT PRIMARY KEY,
            n BIGINT NOT NULL
        )""",
        # 'content' goes up whenever petitions or partners change, so every worker reloads them.
        "INSERT INTO revisions (name, n) VALUES ('content', 1)",
        """CREATE TABLE petitions (
            id {pk},
            slug TEXT NOT NULL UNIQUE,
            document TEXT NOT NULL,
            goal BIGINT NOT NULL,
            status TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )""",
        """CREATE TABLE partners (
            id {pk},
            petition_id BIGINT NOT NULL REFERENCES petitions (id),
            code TEXT NOT NULL,
            name TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            UNIQUE (petition_id, code)
        )""",
        """CREATE TABLE access_keys (
            id TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            petition_id BIGINT REFERENCES petitions (id),
            partner_id BIGINT REFERENCES partners (id),
            secret_hash TEXT NOT NULL,
            label TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT
        )""",
        """CREATE TABLE consent_texts (
            version TEXT PRIMARY KEY,
            lang TEXT NOT NULL,
            text TEXT NOT NULL
        )""",
        """CREATE TABLE signatures (
            id {pk},
            petition_id BIGINT NOT NULL REFERENCES petitions (id),
            partner_id BIGINT REFERENCES partners (id),
            unknown_partner TEXT,
            email_key TEXT NOT NULL,
            email TEXT NOT NULL,
            name TEXT NOT NULL,
            country TEXT,
            comment TEXT,
            lang TEXT NOT NULL,
            consent_version TEXT NOT NULL,
            consent_organiser SMALLINT NOT NULL,
            consent_partner SMALLINT NOT NULL,
            created_at BIGINT NOT NULL,
            UNIQUE (petition_id, email_key)
        )""",
        "CREATE INDEX signatures_by_time ON signatures (petition_id, created_at)",
        "CREATE INDEX signatures_by_partner ON signatures (partner_id, created_at)",
        """CREATE TABLE used_tokens (
            nonce TEXT PRIMARY KEY,
            signature_id BIGINT,
            expires_at BIGINT NOT NULL
        )""",
        "CREATE INDEX used_tokens_by_expiry ON used_tokens (expires_at)",
        """CREATE TABLE counters (
            petition_id BIGINT NOT NULL,
            partner_id BIGINT NOT NULL,
            shard SMALLINT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (petition_id, partner_id, shard)
        )""",
    ],
    [
        # The owner's dashboard lists partner codes that arrived in snippets but belong to no
        # partner; a partial index keeps that query to those few rows.
        "CREATE INDEX signatures_by_unknown_partner ON signatures (petition_id, unknown_partner) "
        "WHERE unknown_partner IS NOT NULL",
    ],
    [
        # A used token remembers a digest of its signer's email key, so that a retry is told
        # apart from a replay without a join, and recording a signature takes two statements
        # instead of three (`signature_id` stays, read only for tokens used before this).
        "ALTER TABLE used_tokens ADD COLUMN email_digest TEXT",
    ],
    [
        # The outbox: work that must follow a change (a mail, a webhook) is written in the same
        # transaction as the change, then delivered by a job (see `outbox`). A claim is a lease:
        # it moves `available_at` to the lease's end, so the due rows of a topic are one range
        # of this index, and a row whose worker died is due again when its lease runs out.
        """CREATE TABLE outbox (
            id {pk},
            topic TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            available_at BIGINT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            claimed_until BIGINT,
            last_error TEXT
        )""",
        "CREATE INDEX outbox_due ON outbox (topic, available_at)",
    ],
    [
        # Confirmation by email. `signatures` keeps holding the signatures that count (so
        # counters, charts, exports and partner pages read confirmed ones only, and every row
        # already there is a confirmed signature: nothing to mark). A submission that needs
        # confirming waits in `pending_signatures`; an address may have several pending at
        # once (a squatter's and its owner's), and the one confirmed wins and deletes the
        # others. `ref` names a submission for the links in its mails, and follows it from
        # pending to counted. Confirmed signatures are placed at their confirmation time
        # (`created_at`, which charts and rates read); `signed_at` keeps when they were sent.
        "ALTER TABLE signatures ADD COLUMN signed_at BIGINT",
        "ALTER TABLE signatures ADD COLUMN ref TEXT",
        # A retry of the very same submission (its answer was lost) gets a working link too.
        "ALTER TABLE used_tokens ADD COLUMN ref TEXT",
        "CREATE UNIQUE INDEX signatures_by_ref ON signatures (ref)",
        """CREATE TABLE pending_signatures (
            id {pk},
            ref TEXT NOT NULL UNIQUE,
            petition_id BIGINT NOT NULL REFERENCES petitions (id),
            partner_id BIGINT REFERENCES partners (id),
            unknown_partner TEXT,
            email_key TEXT NOT NULL,
            email TEXT NOT NULL,
            name TEXT NOT NULL,
            country TEXT,
            comment TEXT,
            lang TEXT NOT NULL,
            consent_version TEXT NOT NULL,
            consent_organiser SMALLINT NOT NULL,
            consent_partner SMALLINT NOT NULL,
            created_at BIGINT NOT NULL
        )""",
        "CREATE INDEX pending_by_signer ON pending_signatures (petition_id, email_key)",
        "CREATE INDEX pending_by_time ON pending_signatures (created_at)",
        # Links in mails and answers: only a digest of each random token is kept, so a copied
        # disk cannot make one, and `SECRET_KEYS` plays no part (rotating keys breaks none).
        """CREATE TABLE links (
            digest TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            petition_id BIGINT NOT NULL,
            ref TEXT NOT NULL,
            expires_at BIGINT
        )""",
        "CREATE INDEX links_by_ref ON links (ref)",
        # Mails sent per address and petition (at most a few, ever), and per recipient and day
        # over all petitions: shared by every worker and host, so no one can flood a mailbox
        # through our form.
        """CREATE TABLE mail_quota (
            petition_id BIGINT NOT NULL,
            email_key TEXT NOT NULL,
            sent INTEGER NOT NULL,
            PRIMARY KEY (petition_id, email_key)
        )""",
        """CREATE TABLE mail_budget (
            recipient TEXT NOT NULL,
            day BIGINT NOT NULL,
            sent INTEGER NOT NULL,
            PRIMARY KEY (recipient, day)
        )""",
        # A row that failed for good keeps no address: it is only counted, until deleted.
        "ALTER TABLE outbox ADD COLUMN failed_at BIGINT",
    ],
    [
        # Email keys made again under IDNA 2008 (faß.de is not fass.de) and without invisible
        # characters; signatures that now share a key are merged, counters following (`rekey`).
        rekey_email_addresses,
    ],
    [
        # Sealed signer data (`domain/sealing`). With a sealing key, `name`, `email` and
        # `comment` stay empty and `sealed` holds them in a box for the owner's key,
        # `partner_sealed` a copy for the partner's key when the signer ticked its box;
        # `email_domain` is an HMAC of the address's domain (abuse rules filter on it).
        "ALTER TABLE signatures ADD COLUMN sealed TEXT",
        "ALTER TABLE signatures ADD COLUMN partner_sealed TEXT",
        "ALTER TABLE signatures ADD COLUMN email_domain TEXT",
        "ALTER TABLE pending_signatures ADD COLUMN sealed TEXT",
        "ALTER TABLE pending_signatures ADD COLUMN partner_sealed TEXT",
        "ALTER TABLE pending_signatures ADD COLUMN email_domain TEXT",
        # What a confirmation page shows of a sealed submission, its name, in a box that only
        # the token in its mail opens (`sealing.name_box`): the server keeps the token's digest.
        "ALTER TABLE pending_signatures ADD COLUMN name_box TEXT",
        # A partner's public key: its consenting signers are sealed for it too.
        "ALTER TABLE partners ADD COLUMN public_key TEXT",
        # When a petition closed (None while open): retention counts from it.
        "ALTER TABLE petitions ADD COLUMN closed_at BIGINT",
        "UPDATE petitions SET closed_at = updated_at WHERE status = 'closed'",
    ],
    [
        # Dashboard sessions (`sessions`): a random id in the cookie, only its digest here, so
        # a copy of the disk holds no session and `SECRET_KEYS` alone signs none that opens.
        # Sessions from before this migration (a signed key id) are no longer read: their
        # holders sign in again.
        """CREATE TABLE dashboard_sessions (
            digest TEXT PRIMARY KEY,
            key_id TEXT NOT NULL REFERENCES access_keys (id),
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )""",
        # Revoking a key ends its sessions; the purge deletes those whose time is up.
        "CREATE INDEX dashboard_sessions_by_key ON dashboard_sessions (key_id)",
        "CREATE INDEX dashboard_sessions_by_expiry ON dashboard_sessions (expires_at)",
    ],
    [
        # The highest goal an `auto_goal` petition has shown (`domain/goals`): the shown goal
        # never decreases, even when signatures are withdrawn after it moved up a step.
        "ALTER TABLE petitions ADD COLUMN shown_goal BIGINT NOT NULL DEFAULT 0",
    ],
    [
        # Webhook endpoints (issue 17, docs/webhooks.md). The secrets sign every delivery, so
        # they are kept as they are, not hashed: whoever copies the database can sign as this
        # server to its CRMs (docs/privacy.md). `old_secret` also signs until
        # `old_secret_until`, 24 h after a rotation. `sequence` numbers each endpoint's events.
        """CREATE TABLE webhook_endpoints (
            id {pk},
            petition_id BIGINT NOT NULL REFERENCES petitions (id),
            partner_id BIGINT REFERENCES partners (id),
            url TEXT NOT NULL,
            format TEXT NOT NULL,
            public_key TEXT,
            secret TEXT NOT NULL,
            old_secret TEXT,
            old_secret_until BIGINT,
            osdi_token TEXT,
            allow_http SMALLINT NOT NULL,
            allow_private SMALLINT NOT NULL,
            sequence BIGINT NOT NULL,
            disabled_at BIGINT,
            disabled_reason TEXT,
            created_at BIGINT NOT NULL
        )""",
        "CREATE INDEX webhook_endpoints_by_petition ON webhook_endpoints (petition_id)",
        # An event row is an outbox row of topic `webhook` for one endpoint: named here, so the
        # dashboard lists an endpoint's failures and removing it takes its rows.
        "ALTER TABLE outbox ADD COLUMN endpoint_id BIGINT",
        "CREATE INDEX outbox_by_endpoint ON outbox (endpoint_id)",
        # What stays of a delivered event: its metadata, never its data.
        """CREATE TABLE webhook_deliveries (
            id {pk},
            endpoint_id BIGINT NOT NULL,
            event_id TEXT NOT NULL,
            type TEXT NOT NULL,
            sequence BIGINT NOT NULL,
            attempts INTEGER NOT NULL,
            status INTEGER NOT NULL,
            created_at BIGINT NOT NULL,
            delivered_at BIGINT NOT NULL
        )""",
        "CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id)",
        # Milestones fired, once per petition, goal value and milestone.
        """CREATE TABLE webhook_milestones (
            petition_id BIGINT NOT NULL,
            goal BIGINT NOT NULL,
            milestone BIGINT NOT NULL,
            reached_at BIGINT NOT NULL,
            PRIMARY KEY (petition_id, goal, milestone)
        )""",
        # With sealing on, the personal fields sealed at submission for each endpoint's key
        # (JSON: endpoint id -> box), held with the submission until it counts, and with the
        # signature after (a restored signature is announced again with them).
        "ALTER TABLE pending_signatures ADD COLUMN webhook_sealed TEXT",
        "ALTER TABLE signatures ADD COLUMN webhook_sealed TEXT",
    ],
    [
        # The box "Show my name on the list delivered to {target}" (`[form] name_to_target`): a
        # consent flag in clear like the others, so the delivery pack can pick the names to
        # list without opening a box it need not open. Rows from before it said no.
        "ALTER TABLE signatures ADD COLUMN consent_name_to_target SMALLINT NOT NULL DEFAULT 0",
        "ALTER TABLE pending_signatures ADD COLUMN consent_name_to_target SMALLINT NOT NULL "
        "DEFAULT 0",
    ],
    [
        # Signature states (`domain/abuse`): 'counted' (on the counters), 'quarantined' (it
        # tripped an abuse rule: stored, answered and mailed like any other, counted nowhere
        # until an owner restores it), 'invalidated' (an owner took it off the count; kept, so
        # it can be restored). Every row before this one counted. A submission waiting for
        # confirmation carries the state it will have once confirmed (never 'counted' there
        # when it was quarantined: confirming records the confirmation, not a count).
        "ALTER TABLE signatures ADD COLUMN status TEXT NOT NULL DEFAULT 'counted'",
        "ALTER TABLE pending_signatures ADD COLUMN status TEXT NOT NULL DEFAULT 'counted'",
        # The dashboard's quarantine view and the bulk actions select by state, then by time.
        "CREATE INDEX signatures_by_status ON signatures (petition_id, status, created_at)",
    ],
]
