"""Interface languages: message catalogs, with plural rules, numbers, dates, country names and
writing direction from Unicode CLDR (through Babel), and the choice of a language.

A language is one file, `server/domain/locales/LL.toml`, so translators edit text, not code.
English is the reference: every catalog has exactly its messages (a test checks this). What
CLDR knows about a language is not written in the catalog but asked of Babel: which plural
categories it has (Russian: one, few, many; Arabic: zero, one, two, few, many), how it groups
digits (50,000 / 50 000 / 50.000) and in which digits (CLDR's default numbering system), how it
writes a date, what it calls each country, and whether it is written right to left. A file
named after a language Babel does not know stops the server at start-up, rather than quietly
falling back to English.

A catalog has up to three parts besides its messages:
- `[review]`: the state of each consent text. Signers agree to these, so a loose translation
  changes what they agreed to; until a native speaker has compared one with the English and
  signed it off, the widget shows the English original beside it (docs/translating.md).
- `[dashboard]`: the dashboard's texts. Optional: the dashboard is offered in the languages
  whose catalog has them, with exactly English's keys.
- `[meta]`: nothing is required there; CLDR knows the rest.

Babel is imported here, in the pure domain: it is data and formatting, no I/O after import.
"""

from __future__ import annotations

import copy
import datetime
import functools
import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import babel
import babel.dates
import babel.numbers

_LOCALES = Path(__file__).with_name("locales")

DEFAULT_LANGUAGE = "en"
#: The texts a signer agrees to: each is reviewed on its own (see `[review]`).
CONSENT_KEYS = ("consent_notice", "consent_notice_no_organiser", "consent_organiser",
                "consent_partner", "consent_name_to_target")  # fmt: skip
UNREVIEWED = "unreviewed"
_PARTS = ("meta", "review", "dashboard")


def digest(text: str) -> str:
    """What a review records of the English it was checked against: if the English changes,
    the review no longer holds."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Catalog:
    """The messages of one language, and what CLDR says about writing it."""

    def __init__(self, lang: str, data: dict[str, Any]) -> None:
        parts = {name: data.pop(name, {}) for name in _PARTS}
        self.lang = lang
        # Raises babel.UnknownLocaleError for a file named after no language CLDR knows.
        self.locale = babel.Locale.parse(lang)
        self.name = str(parts["meta"].get("name") or self.locale.get_display_name(self.locale))
        self.dir = "rtl" if self.locale.character_order == "right-to-left" else "ltr"
        self.numbering_system: str = self.locale.default_numbering_system
        self.messages: dict[str, Any] = data
        self.review: dict[str, Any] = parts["review"]
        self.dashboard: dict[str, str] | None = parts["dashboard"] or None

    def __call__(self, key: str, **values: Any) -> str:
        """The message `key`, with `{name}` placeholders filled from `values` (whole numbers
        written as this language writes them)."""
        text = str(self.messages[key])
        return text.format(**self._localised(values)) if values else text

    def _localised(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: self.number(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in values.items()
        }

    def admin(self, key: str, **values: Any) -> str:
        """A dashboard text; English where this catalog has no dashboard."""
        texts = self.dashboard if self.dashboard is not None else catalog("en").dashboard
        assert texts is not None
        text = texts[key]
        return text.format(**self._localised(values)) if values else text

    def number(self, n: int | float) -> str:
        """`n` as CLDR writes it in this language, in its default digits: 50,000 in English,
        50 000 (no-break space) in Russian, 50.000 in German."""
        return babel.numbers.format_decimal(n, locale=self.locale, numbering_system="default")

    @functools.cached_property
    def number_format(self) -> dict[str, Any]:
        """How this language writes numbers, for the widget's script: it formats live counts
        with `Intl.NumberFormat` in `system`, and checks it against `samples` formatted here; a
        browser whose CLDR data differs (Debian's Chromium has no Kazakh, and groups 1,234 as
        English does) uses `digits` and `group` instead, so server and script always agree."""
        return {
            "system": self.numbering_system,
            "digits": "".join(self.number(d) for d in range(10)),
            "group": babel.numbers.get_group_symbol(self.locale, numbering_system="default"),
            "samples": [[n, self.number(n)] for n in (1234, 1234567)],
        }

    def percent(self, share: float) -> str:
        """A share (0.253) as CLDR writes a percentage here, to one decimal: 25.3% in English,
        25,3 % in German, %25,3 in Turkish."""
        return str(self._percent.apply(share, self.locale, numbering_system="default"))

    @functools.cached_property
    def _percent(self) -> babel.numbers.NumberPattern:
        pattern: babel.numbers.NumberPattern = copy.copy(self.locale.percent_formats[None])
        pattern.frac_prec = (1, 1)  # one decimal always: 25.0%, so columns line up
        return pattern

    def date(self, day: datetime.date) -> str:
        """A date as readers of the language write it: April 21, 2022 / 21 апреля 2022 г."""
        return babel.dates.format_date(day, "long", locale=self.locale)

    def skeleton(self, moment: datetime.datetime, skeleton: str) -> str:
        """`moment` in the form CLDR gives this language for a skeleton ("MMMd": Apr 21;
        "yMMMdHm": Apr 21, 2022, 21:05). Babel matches date and time skeletons apart, so a
        skeleton with both is joined by the language's own date-and-time pattern."""
        date = "".join(c for c in skeleton if c not in "HhmsaBb")
        time = "".join(c for c in skeleton if c in "HhmsaBb")
        parts = [
            babel.dates.format_skeleton(part, moment, tzinfo=moment.tzinfo, locale=self.locale)
            for part in (date, time)
            if part
        ]
        if len(parts) == 1:
            return str(parts[0])
        pattern = str(self.locale.datetime_formats["medium"])
        return pattern.replace("{1}", parts[0]).replace("{0}", parts[1])

    @property
    def plural_categories(self) -> frozenset[str]:
        """The CLDR plural categories of this language's whole numbers, `other` included."""
        return frozenset(self.locale.plural_form.tags) | {"other"}

    def plural_category(self, n: int) -> str:
        return str(self.locale.plural_form(n))

    def plural(self, key: str, n: int, **values: Any) -> str:
        """The plural form of message `key` that fits `n`; `{count}` is `n` formatted."""
        forms = self.messages[key]
        text = forms.get(self.plural_category(n)) or forms["other"]
        return str(text.format(count=self.number(n), **values))

    def plural_forms(self, key: str) -> dict[str, str]:
        """All forms of a plural message, for the widget's script to choose from."""
        return dict(self.messages[key])

    def country(self, code: str) -> str:
        """The CLDR name of an ISO 3166-1 country in this language."""
        return str(self.locale.territories.get(code) or catalog("en").locale.territories[code])

    def reviewed(self, key: str) -> bool:
        """Whether a native speaker signed off this consent text against the English it now
        translates. English is the original, and is never shown beside itself."""
        if self.lang == DEFAULT_LANGUAGE:
            return True
        record = self.review.get(key, UNREVIEWED)
        english = CATALOGS[DEFAULT_LANGUAGE].messages[key]
        return isinstance(record, dict) and record.get("english") == digest(english)

    @property
    def unreviewed_consent(self) -> bool:
        return not all(self.reviewed(key) for key in CONSENT_KEYS)


def _load_catalogs() -> dict[str, Catalog]:
    catalogs = {}
    for path in sorted(_LOCALES.glob("*.toml")):
        with path.open("rb") as f:
            catalogs[path.stem] = Catalog(path.stem, tomllib.load(f))
    return catalogs


CATALOGS: dict[str, Catalog] = _load_catalogs()
LANGUAGES: frozenset[str] = frozenset(CATALOGS)
#: The languages the dashboard speaks: those whose catalog has its texts.
DASHBOARD_LANGUAGES: frozenset[str] = frozenset(k for k, c in CATALOGS.items() if c.dashboard)


def catalog(lang: str) -> Catalog:
    return CATALOGS.get(lang) or CATALOGS[DEFAULT_LANGUAGE]


def parse_accept_language(header: str) -> list[str]:
    """Primary language subtags from an `Accept-Language` header, best first: `de-CH` is `de`,
    `pt-BR` is `pt` (a catalog serves every region of its language)."""
    weighted = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().replace("_", "-").split("-")[0].lower()
        if primary and primary != "*" and quality > 0:
            weighted.append((-quality, position, primary))
    return [primary for _, _, primary in sorted(weighted)]


def choose_language(
    requested: str | None, accept_language: str, available: Iterable[str], default: str
) -> str:
    """The language to answer in: the one asked for, else the browser's preference, else default.

    `available` is what the petition has texts for; anything else falls through.
    """
    offered = set(available)
    if requested:
        primary = requested.strip().replace("_", "-").split("-")[0].lower()
        if primary in offered:
            return primary
    for primary in _preferences(accept_language):
        if primary in offered:
            return primary
    return default


def _preferences(header: str) -> tuple[str, ...]:
    """`parse_accept_language`, remembered for the few headers browsers actually send."""
    if len(header) > 200:
        return tuple(parse_accept_language(header))
    return _remembered_preferences(header)


@functools.lru_cache(maxsize=1024)
def _remembered_preferences(header: str) -> tuple[str, ...]:
    return tuple(parse_accept_language(header))
