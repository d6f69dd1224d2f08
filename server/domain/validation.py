"""Checking and normalising what a signer types. Pure functions, no I/O.

Errors are message keys of the interface catalogs (`i18n`), so the caller answers in the
signer's language; every field is checked and all errors are reported at once.

How an email address is checked and normalised for "one signature per person"
(docs/privacy.md): surrounding white space is removed and the text is put in Unicode NFC; an
address with an invisible character anywhere (`_INVISIBLE`: zero-width characters, joiners,
bidirectional controls, the soft hyphen, fillers) is refused, as it would look like another;
then `email-validator` checks the syntax, without any DNS look-up (a signer must not wait on
DNS, and a domain that does not resolve today may tomorrow). Its domain goes through UTS-46 and
IDNA 2008, so `faß.de` (xn--fa-hia.de) and `fass.de` stay two domains, as registries hold them;
Python's own `idna` codec is IDNA 2003, which folds ß into ss. The key is the local part
lower-cased (then NFC again) and the domain in lower-case ASCII: `Anna@ÖBB.at` is
`anna@xn--bb-eka.at`. Unicode local parts (EAI, RFC 6531) are accepted as email-validator
accepts them; only quoted local parts, IP-address domains and display names are refused.
Nothing provider-specific is done: dots and "+tags" stay, so `a.b+x@example.org` and
`ab@example.org` are two people.

The rules changed once (IDNA 2003 to 2008, invisible characters): `stored_email_key` gives an
address stored under the old rules its key under these, for the migration that re-keys them.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import email_validator

from server.domain import countries
from server.domain.errors import Refusal

if TYPE_CHECKING:
    from server.domain.form_tokens import Claims

NAME_MAX = 120
COMMENT_MAX = 1_000
EMAIL_MAX = 254  # RFC 5321: the longest address a mail server must handle
LOCAL_PART_MAX = 64  # RFC 5321, in characters: email-validator's strict mode checks it

# Unicode categories never allowed in a name: controls, surrogates, private use, unassigned,
# line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
# Characters that make a name or comment display as something else, or hide text inside it,
# in a spreadsheet or dashboard: bidirectional embeddings and overrides (U+202A-U+202E) and
# isolates (U+2066-U+2069), the zero width space (U+200B), the word joiner (U+2060) and the
# zero width no-break space (U+FEFF, a byte order mark). The joiners (ZWNJ, ZWJ) and the marks
# (LRM, RLM) stay allowed: Persian, Arabic, Indic scripts and emoji need them.
_HIDING = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u2060\ufeff")
_WHITESPACE_RUN = re.compile(r"\s+")
# No top-level domain has one letter or digits only; email-validator would take `a@b.c`.
_TLD = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")
# Characters that show as nothing (or as a blank) and so make one address look like another:
# refused anywhere in an address, before email-validator looks. Its own checks let some through
# (a Hangul filler in the local part), and UTS-46 alone would delete others from a domain
# (`fa\u00adss.de` would become `fass.de`); this list does not depend on a release of it.
# Unicode's Default_Ignorable_Code_Point ranges, the braille blank, and (below) every format
# (Cf), control (Cc) and separator (Z*) character.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x200B, 0x200F),  # zero width space, non-joiner, joiner; left-to-right and right-to-left marks
    (0x202A, 0x202E),  # bidirectional embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidirectional isolates, old formats
    (0x2800, 0x2800),  # braille pattern blank
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero width no-break space (byte order mark)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # reserved specials
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE0FFF),  # tags and variation selectors supplement
)
_INVISIBLE = frozenset(chr(c) for low, high in _INVISIBLE_RANGES for c in range(low, high + 1))
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})

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
    # The box "Show my name on the list delivered to {target}" (`[form] name_to_target`).
    consent_name_to_target: bool = False


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
    consent_name_to_target = check("consent_name_to_target", parse_boolean)
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
        consent_name_to_target=consent_name_to_target,
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
    """Nothing forbidden and nothing that hides text (`_HIDING`). `isprintable()` (in C)
    settles almost every real name at once: it refuses all controls, format characters,
    separators other than space, and unassigned or private code points; only text it refuses
    is looked at closely, as some of those (joiners, direction marks) are needed by some
    scripts."""
    return text.isprintable() or (_allowed(text) and not any(c in _HIDING for c in text))


def email_key_of(email: str) -> str:
    """The normalised form of an address (see the module docstring), or `_Invalid`:
    `error_email_too_long` past `EMAIL_MAX` (in characters, or in UTF-8 bytes as RFC 5321
    counts), `error_email_invalid` for anything else."""
    email = unicodedata.normalize("NFC", email).strip()
    if _has_invisible(email):
        raise _Invalid("error_email_invalid")
    if max(len(email), len(email.encode("utf-8", "surrogatepass"))) > EMAIL_MAX:
        raise _Invalid("error_email_too_long")
    local, _, domain = email.rpartition("@")
    if _DOT_ATOM.fullmatch(local) and len(local) <= LOCAL_MAX and domain.isascii():
        # Nearly every address: an ASCII dot-atom local part, which email-validator would only
        # check against the same grammar, and an ASCII domain, whose check (about 25 µs, most
        # of a signature's validation) is the same for every signer of gmail.com: done once.
        ascii_domain = _checked_domain(domain.lower())
        if ascii_domain is None:
            raise _Invalid("error_email_invalid")
        return f"{local.lower()}@{ascii_domain}"
    try:
        checked = _validate(email)
    except email_validator.EmailNotValidError:
        raise _Invalid("error_email_invalid") from None
    domain = checked.ascii_domain.lower()
    if not _TLD.fullmatch(domain.rpartition(".")[2]):
        raise _Invalid("error_email_invalid")
    # Lower-casing may decompose (U+0130 becomes i and a combining dot): NFC again, so that
    # normalising a key gives it back.
    key = f"{unicodedata.normalize('NFC', checked.local_part.lower())}@{domain}"
    if len(key.encode("utf-8")) > EMAIL_MAX:
        raise _Invalid("error_email_too_long")
    return key


# Every option is given, not left to email-validator's module-wide defaults, which any importer
# may change. `strict` adds the local part's limit of 64 characters.
_validate = functools.partial(
    email_validator.validate_email,
    check_deliverability=False,  # no DNS look-up, ever
    allow_smtputf8=True,
    allow_empty_local=False,
    allow_quoted_local=False,
    allow_domain_literal=False,
    allow_display_name=False,
    globally_deliverable=True,
    test_environment=False,
    strict=True,
)
# RFC 5322's dot-atom in ASCII: what email-validator accepts unquoted, in the grammar it checks.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
LOCAL_MAX = 64  # RFC 5321's limit on a local part, which `strict` enforces below


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> str | None:
    """A lower-case ASCII domain as email-validator checks it (IDNA 2008, special-use and
    top-level rules), or None when it refuses it; and our own rule on the top-level label."""
    try:
        checked = _validate(f"a@{domain}")
    except email_validator.EmailNotValidError:
        return None
    ascii_domain = checked.ascii_domain.lower()
    return ascii_domain if _TLD.fullmatch(ascii_domain.rpartition(".")[2]) else None


def stored_email_key(email: str) -> str | None:
    """The key of an address stored under earlier rules (for the migration that re-keys them):
    its key now; or, for one refused only for its invisible characters, the key of the address
    without them (so `a\u200b@b.org` and `a@b.org` are one signer, as they look); None when even
    that is refused (a `.test` domain, a symbol IDNA 2008 refuses), and the caller keeps the
    key it had."""
    try:
        return email_key_of(email)
    except _Invalid:
        pass
    try:
        return email_key_of(strip_invisible(email))
    except _Invalid:
        return None


def strip_invisible(text: str) -> str:
    """The text without its invisible characters (see `_INVISIBLE`)."""
    return "".join(c for c in text if not _invisible(c))


def _invisible(c: str) -> bool:
    return c in _INVISIBLE or unicodedata.category(c) in _INVISIBLE_CATEGORIES


def _has_invisible(text: str) -> bool:
    # Nearly every address is printable ASCII without a space: settled in C, at once.
    if text.isascii() and text.isprintable() and " " not in text:
        return False
    return any(_invisible(c) for c in text)


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
