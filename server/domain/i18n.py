"""Interface languages: message catalogs, plural forms, number formatting, language choice.

Catalogs are TOML files in `server/domain/locales/`, one per language, so translators edit text, not
code. English is the reference: every catalog must have exactly its keys (a test checks this).
Plural rules and digit grouping follow Unicode CLDR for the languages we ship; adding a language
means adding its catalog and, if its plural rule is new, a line in `_PLURAL_RULES`.
"""

from __future__ import annotations

import datetime
import functools
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

_LOCALES = Path(__file__).with_name("locales")

DEFAULT_LANGUAGE = "en"


def _plural_en(n: int) -> str:
    return "one" if n == 1 else "other"


def _plural_ru(n: int) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return "one"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "few"
    return "many"


_PLURAL_RULES: dict[str, Callable[[int], str]] = {"en": _plural_en, "ru": _plural_ru}


class Catalog:
    """The messages of one language."""

    def __init__(self, lang: str, data: dict[str, Any]) -> None:
        meta = data.pop("meta")
        self.lang = lang
        self.name: str = meta["name"]
        self.dir: str = meta.get("dir", "ltr")
        self.group_separator: str = meta["group_separator"]
        self._date_format: str = meta["date_format"]
        self._months: list[str] = meta["months"]
        self.messages: dict[str, Any] = data
        self._plural = _PLURAL_RULES.get(lang, _plural_en)

    def __call__(self, key: str, **values: Any) -> str:
        """The message `key`, with `{name}` placeholders filled from `values`."""
        text = str(self.messages[key])
        return text.format(**values) if values else text

    def number(self, n: int) -> str:
        """`n` with digit grouping: 50,000 in English, 50 000 (no-break space) in Russian."""
        return f"{n:,}".replace(",", self.group_separator)

    def date(self, day: datetime.date) -> str:
        """A date as readers of the language write it: April 21, 2022 / 21 апреля 2022 г."""
        month = self._months[day.month - 1]
        return self._date_format.format(day=day.day, month=month, year=day.year)

    def plural(self, key: str, n: int, **values: Any) -> str:
        """The plural form of message `key` that fits `n`; `{count}` is `n` formatted."""
        forms = self.messages[key]
        text = forms.get(self._plural(n)) or forms["other"]
        return str(text.format(count=self.number(n), **values))

    def plural_forms(self, key: str) -> dict[str, str]:
        """All forms of a plural message, for the widget's script to choose from."""
        return dict(self.messages[key])


def _load_catalogs() -> dict[str, Catalog]:
    catalogs = {}
    for path in sorted(_LOCALES.glob("*.toml")):
        with path.open("rb") as f:
            catalogs[path.stem] = Catalog(path.stem, tomllib.load(f))
    return catalogs


CATALOGS: dict[str, Catalog] = _load_catalogs()
LANGUAGES: frozenset[str] = frozenset(CATALOGS)


def catalog(lang: str) -> Catalog:
    return CATALOGS.get(lang) or CATALOGS[DEFAULT_LANGUAGE]


def parse_accept_language(header: str) -> list[str]:
    """Primary language subtags from an `Accept-Language` header, best first."""
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
        primary = tag.strip().split("-")[0].lower()
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
        primary = requested.strip().split("-")[0].lower()
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
