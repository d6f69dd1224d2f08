"""Writes the lists of shipped languages into the docs, from the catalogs themselves.

    .venv/bin/python scripts/languages.py           # rewrite the lists
    .venv/bin/python scripts/languages.py --check   # exit 1 if a list is out of date

Each list sits between `<!-- languages:NAME -->` and `<!-- /languages:NAME -->` in README.md,
docs/petition-format.md and docs/widget.md, so a new catalog file changes them with one command
and a test (tests/test_languages_docs.py) fails while they are stale. What a list says comes
from the catalog and CLDR: the code, the language's own name, its plural categories, its
direction, and whether its consent texts are reviewed and its dashboard translated.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.domain import i18n  # noqa: E402 - after the path is set, as a script


def _ordered() -> list[i18n.Catalog]:
    """English first (the reference), then by code."""
    return sorted(i18n.CATALOGS.values(), key=lambda c: (c.lang != "en", c.lang))


def codes() -> str:
    """`en`, `ar`, `de`, ...: for attribute tables."""
    return ", ".join(f"`{c.lang}`" for c in _ordered())


def _english_name(c: i18n.Catalog) -> str:
    return str(c.locale.get_display_name("en"))


def names() -> str:
    """English (`en`), Arabic (`ar`), ...: for prose."""
    return ", ".join(f"{_english_name(c)} (`{c.lang}`)" for c in _ordered())


def table() -> str:
    rows = [
        "| Code | Language | Plural forms (CLDR) | Direction | Consent texts | Dashboard |",
        "|---|---|---|---|---|---|",
    ]
    order = ("zero", "one", "two", "few", "many", "other")
    for c in _ordered():
        plurals = ", ".join(k for k in order if k in c.plural_categories)
        consent = (
            "original" if c.lang == "en" else ("unreviewed" if c.unreviewed_consent else "reviewed")
        )
        dashboard = "yes" if c.dashboard else "English"
        language = _english_name(c) if c.lang == "en" else f"{_english_name(c)}: {c.name}"
        rows.append(f"| `{c.lang}` | {language} | {plurals} | {c.dir} | {consent} | {dashboard} |")
    return "\n".join(rows)


LISTS: dict[str, Callable[[], str]] = {"codes": codes, "names": names, "table": table}
FILES = ("README.md", "docs/petition-format.md", "docs/widget.md")
_BLOCK = re.compile(r"(<!-- languages:(\w+) -->)(.*?)(<!-- /languages:\2 -->)", re.DOTALL)


def rewritten(text: str) -> str:
    def fill(match: re.Match[str]) -> str:
        body = LISTS[match[2]]()
        inner = f"\n{body}\n" if "\n" in body or "\n" in match[3] else body
        return f"{match[1]}{inner}{match[4]}"

    return _BLOCK.sub(fill, text)


def main(argv: list[str]) -> int:
    stale = []
    for name in FILES:
        path = ROOT / name
        text = path.read_text(encoding="utf-8")
        if not _BLOCK.search(text):
            print(f"{name}: no <!-- languages:... --> list", file=sys.stderr)
            return 1
        new = rewritten(text)
        if new != text:
            stale.append(name)
            if "--check" not in argv:
                path.write_text(new, encoding="utf-8")
    if stale and "--check" in argv:
        print("out of date: " + ", ".join(stale) + " (run scripts/languages.py)", file=sys.stderr)
        return 1
    for name in stale:
        print(f"rewrote the language lists in {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
