"""ISO 3166-1 alpha-2 country codes with their names in the interface languages.

The list lives in `data/countries.tsv` (code, English name, Russian name), taken from the
iso-codes project and Unicode CLDR, so that the no-JavaScript form can offer names in the
signer's language without a network lookup.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

_DATA = Path(__file__).with_name("data") / "countries.tsv"


def _load() -> dict[str, dict[str, str]]:
    names: dict[str, dict[str, str]] = {}
    for line in _DATA.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, en, ru = line.split("\t")
            names[code] = {"en": en, "ru": ru}
    return names


_NAMES = _load()

CODES: frozenset[str] = frozenset(_NAMES)


def name(code: str, lang: str) -> str:
    names = _NAMES[code]
    return names.get(lang) or names["en"]


def choices(lang: str) -> list[tuple[str, str]]:
    """(code, name) pairs sorted by name as a reader of `lang` expects."""
    pairs = [(code, name(code, lang)) for code in _NAMES]
    # Decomposing letters sorts "Åland" with the A's and "Ё" with the "Е"s, as readers expect.
    return sorted(pairs, key=lambda pair: unicodedata.normalize("NFKD", pair[1]).casefold())
