"""The project's errors: one base class and a small hierarchy, so callers catch what they mean.

    PetitionWidgetError
    ├── Refusal                 a request we turn down; `code` is the API's error code
    │   ├── TokenError          (form_tokens) invalid, expired, too fresh, wrong petition
    │   ├── FieldErrors         (validation) per-field messages, answered 422
    │   ├── PetitionClosed
    │   ├── TokenUsed           the token was used by someone else
    │   ├── ChallengeRequired   (challenge) no solution, or a wrong one, while a challenge is on
    │   └── PayloadError        (web.payloads) a body we cannot read
    ├── StorageUnavailable      the database cannot be used right now: try again later
    ├── PetitionFileError       (petitions) a petition file we cannot load
    ├── SettingsError           (settings) a setting with a wrong value
    ├── Conflict                a change that clashes with what is stored (a taken code)
    ├── BadPayload              work queued in the outbox that cannot be done as written
    ├── UnknownDatabase         (store.engine) a DATABASE_URL no engine can use
    ├── MailError               (store.smtp) a mail not sent: transient, or permanent (5xx)
    └── GiveUp                  (store.outbox) a handler's word that its row can never succeed

Which HTTP status answers which refusal is decided in one table, `server.web.refusals`; the
domain only names the refusal. No message of these errors ever carries signer data: they are
logged, and shown to owners.
"""

from __future__ import annotations


class PetitionWidgetError(Exception):
    """The base of every error this project raises on purpose."""


class Refusal(PetitionWidgetError):
    """A request turned down. `code` is the API's error code (`{"error": code}`), and
    `retry_after`, when set, the seconds after which the same request may succeed."""

    code = "refused"
    retry_after: int | None = None

    def __init__(self, code: str | None = None, *, retry_after: int | None = None) -> None:
        if code is not None:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after
        super().__init__(self.code)


class PetitionClosed(Refusal):
    code = "petition_closed"


class TokenUsed(Refusal):
    """The form token was already used for another signer's signature."""

    code = "token_used"


class StorageUnavailable(PetitionWidgetError):
    """The database cannot be reached or written to right now. Never carries signer data."""

    code = "storage_unavailable"


class Conflict(PetitionWidgetError):
    """A change that clashes with what is stored, such as a partner code already taken."""


class BadPayload(PetitionWidgetError):
    """Work queued in the outbox that cannot be done as it was written (an unknown kind of
    mail, a missing link): a bug of ours, never retried."""
