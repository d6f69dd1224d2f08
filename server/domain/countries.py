"""ISO 3166-1 alpha-2 country codes, with their names in every interface language from Unicode
CLDR (through Babel), so that the no-JavaScript form offers names in the signer's language
without a network lookup, and a new language brings its country names with it.

The codes are CLDR's two-letter regions less those that are no country of ISO 3166-1: codes
reserved for other uses (AC, CP, CQ, DG, EA, IC, TA), groupings (EU, EZ, UN), private-use codes
(QO, XA, XB, XK) and "unknown" (ZZ). That leaves the 249 that the iso-codes project lists.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import babel

from server.domain import i18n

_NOT_COUNTRIES = frozenset(
    {"AC", "CP", "CQ", "DG", "EA", "IC", "TA", "EU", "EZ", "UN", "QO", "XA", "XB", "XK", "ZZ"}
)

CODES: frozenset[str] = frozenset(
    code
    for code in map(str, babel.Locale.parse("en").territories)
    if re.fullmatch(r"[A-Z]{2}", code) and code not in _NOT_COUNTRIES
)


def name(code: str, lang: str) -> str:
    return i18n.catalog(lang).country(code)


@functools.cache
def choices(lang: str) -> tuple[tuple[str, str], ...]:
    """(code, name) pairs sorted by name as a reader of `lang` expects (asked on every render
    of a form, so made once per language)."""
    pairs = [(code, name(code, lang)) for code in CODES]
    # Decomposing letters sorts "Åland" with the A's and "Ё" with the "Е"s, as readers expect.
    return tuple(sorted(pairs, key=lambda p: unicodedata.normalize("NFKD", p[1]).casefold()))
