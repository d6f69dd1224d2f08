"""Checking and normalising what a signer types. Pure functions, no I/O.

Errors are message keys of the interface catalogs (`i18n`), so the caller answers in the
signer's language; every field is checked and all errors are reported at once.

How an email address is normalised for "one signature per person" (docs/privacy.md):
surrounding white space is removed, the text is put in Unicode NFC, the domain is converted to
its ASCII (IDNA) form, and the whole address is lower-cased. Nothing provider-specific is done:
dots and "+tags" stay, so `a.b+x@example.org` and `ab@example.org` are two people.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from server.domain import countries
from server.domain.errors import Refusal

if TYPE_CHECKING:
    from server.domain.form_tokens import Claims

NAME_MAX = 120
COMMENT_MAX = 1_000
EMAIL_MAX = 254  # RFC 5321: the longest address a mail server must handle
LOCAL_PART_MAX = 64

# Unicode categories never allowed in a name: controls, surrogates, private use, unassigned,
# line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
# Bidirectional embeddings, overrides and isolates can make a name display as something else
# in a spreadsheet or dashboard; the marks (LRM/RLM) and joiners that scripts need stay allowed.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_WHITESPACE_RUN = re.compile(r"\s+")
# Characters that may not appear unquoted in a local part (RFC 5322 specials and space).
_LOCAL_FORBIDDEN = re.compile(r"[\s\"(),:;<>@\[\]\\]")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")

TRUE_WORDS = frozenset({"1", "true", "on", "yes"})
FALSE_WORDS = frozenset({"", "0", "false", "off", "no"})


@dataclasses.dataclass(frozen=True)
class Signer:
    name: str
    email: str
    email_key: str  # the normalised address: one signature per key and petition
    country: str | None
    comment: str | None
    consent_organiser: bool
    consent_partner: bool


class FieldErrors(Refusal):
    """Invalid fields: `errors` maps a field name to (message key, message values)."""

    code = "invalid_fields"
    claims: Claims | None = None  # the form token's, set by the signing decision

    def __init__(self, errors: dict[str, tuple[str, dict[str, Any]]]) -> None:
        super().__init__()
        self.errors = errors


def validate_signer(
    fields: Mapping[str, Any], *, country: str = "optional", comment: str = "hidden"
) -> Signer:
    """A `Signer` from submitted fields, or `FieldErrors` listing every problem.

    `country` is the petition's mode for that field (required, optional, hidden), `comment` too
    (optional, hidden). A hidden field that is sent anyway is still checked (the API's
    description promises a malformed one is refused, whatever the petition), then dropped.
    """
    errors: dict[str, tuple[str, dict[str, Any]]] = {}

    def check(field: str, func: Any, *args: Any) -> Any:
        try:
            return func(fields.get(field), *args)
        except _Invalid as exc:
            errors[field] = (exc.key, exc.values)
            return None

    name = check("name", normalise_name)
    email = check("email", _clean_email)
    email_key = None
    if email is not None:
        email_key = check("email", lambda _: email_key_of(email))
    chosen_country = check("country", _country, "optional" if country == "hidden" else country)
    text = check("comment", _comment)
    if country == "hidden":
        chosen_country = None
    if comment == "hidden":
        text = None
    consent_organiser = check("consent_organiser", parse_boolean)
    consent_partner = check("consent_partner", parse_boolean)
    if errors or email_key is None:
        raise FieldErrors(errors)
    return Signer(
        name=name,
        email=email,
        email_key=email_key,
        country=chosen_country,
        comment=text,
        consent_organiser=consent_organiser,
        consent_partner=consent_partner,
    )


class _Invalid(ValueError):
    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key, self.values = key, values


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid("error_not_text")
    return unicodedata.normalize("NFC", value).strip()


def normalise_name(value: Any) -> str:
    # Tabs and line breaks pasted into a name are white space, not controls: collapse them.
    name = _WHITESPACE_RUN.sub(" ", _text(value))
    if not name:
        raise _Invalid("error_required")
    if not _plain(name):
        raise _Invalid("error_name_invalid")
    if len(name) > NAME_MAX:
        raise _Invalid("error_name_too_long", max=NAME_MAX)
    return name


def _clean_email(value: Any) -> str:
    email = _text(value)
    if not email:
        raise _Invalid("error_required")
    if len(email) > EMAIL_MAX:
        raise _Invalid("error_email_too_long")
    return email


def _allowed(text: str) -> bool:
    """No character of a forbidden category (the slow check, character by character)."""
    return not any(unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in text)


def _plain(text: str) -> bool:
    """Nothing forbidden and no bidirectional controls. `isprintable()` (in C) settles almost
    every real name at once: it refuses all controls, format characters, separators other than
    space, and unassigned or private code points; only text it refuses is looked at closely,
    as some of those (joiners, direction marks) are needed by some scripts."""
    return text.isprintable() or (_allowed(text) and not any(c in _BIDI_CONTROLS for c in text))


def email_key_of(email: str) -> str:
    """The normalised form of an address (see the module docstring), or `_Invalid`."""
    email = unicodedata.normalize("NFC", email).strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or len(local) > LOCAL_PART_MAX:
        raise _Invalid("error_email_invalid")
    if (
        _LOCAL_FORBIDDEN.search(local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
        or not (local.isprintable() or _allowed(local))
    ):
        raise _Invalid("error_email_invalid")
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None:
        raise _Invalid("error_email_invalid")
    key = f"{local.lower()}@{ascii_domain}"
    if len(key) > EMAIL_MAX:
        raise _Invalid("error_email_too_long")
    return key


@functools.lru_cache(maxsize=4096)  # a surge brings thousands of signers from a few domains
def _ascii_domain(domain: str) -> str | None:
    """The domain in lower-case ASCII (IDNA), or None if it is not a valid host name."""
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if not _TLD.fullmatch(labels[-1]):
        return None
    return ascii_domain


def _country(value: Any, mode: str) -> str | None:
    code = _text(value).upper()
    if not code:
        if mode == "required":
            raise _Invalid("error_required")
        return None
    if code not in countries.CODES:
        raise _Invalid("error_country_invalid")
    return code


def _comment(value: Any) -> str | None:
    # Browsers send a textarea's line breaks as CRLF: they are line breaks, not controls.
    text = _text(value).replace("\r\n", "\n")
    if not text:
        return None
    if not _plain(text.replace("\n", " ").replace("\t", " ")):
        raise _Invalid("error_comment_invalid")
    if len(text) > COMMENT_MAX:
        raise _Invalid("error_comment_too_long", max=COMMENT_MAX)
    return text


def parse_boolean(value: Any) -> bool:
    """A consent flag: JSON true/false, or a form checkbox ("on" when ticked, absent when not)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise _Invalid("error_not_boolean")
