"""Measures, in Chromium, the heights `server/domain/placeholder.py` is built from, and prints
them as its tables read: the form of a minimal petition (one-letter texts) in every language
and layout at 375 and 800 px, and what the country and comment fields, the organiser's box,
the name-to-target box and a one-line legal notice add.

    .venv/bin/python scripts/measure_heights.py

Rerun it when widget.css, widget.html or a catalog changes, and copy the figures into
placeholder.py; tests/browser/test_experience_browser.py checks the estimates against the
real heights of the example petition. Needs Debian's chromium and Playwright (the test extras).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from server.domain import i18n  # noqa: E402
from server.domain.petitions import parse  # noqa: E402
from tests.browser.conftest import CHROMIUM_ARGS  # noqa: E402
from tests.support import backends, live  # noqa: E402

LANGS = ["en", *sorted(set(i18n.LANGUAGES) - {"en"})]  # the petitions are written in English
VARIANTS = {
    "min": "",
    "nocountry": '[form]\ncountry = "hidden"\n',
    "comment": '[form]\ncomment = "optional"\n',
    "organiser": 'organiser = "O"\n',
    "legal": 'legal_notice = "L"\n',
    "target": '[form]\nname_to_target = "optional"\n',
}


def petition_file(slug: str, extra: str) -> str:
    translations = "".join(f'\n[translations.{lang}]\ntitle = "T"\n' for lang in LANGS[1:])
    return (
        f'slug = "{slug}"\nlang = "en"\ngoal = 100\ntitle = "T"\nsummary = "S"\n'
        f'target = "X"\nstatement = "Y"\n{extra}\n[signing]\nconfirmation = "none"\n' + translations
    )


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    url = backends.sqlite_url(folder)
    live.prepare(url, [parse(petition_file("v-" + k, v)) for k, v in VARIANTS.items()])
    heights: dict[tuple[str, str, str], list[int]] = {}
    measure = "Math.ceil(document.documentElement.getBoundingClientRect().height)"
    with live.LiveServer(url, folder) as server, sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        for width in (375, 800):
            context = chromium.new_context(viewport={"width": width, "height": 900})
            page = context.new_page()
            for layout in ("full", "compact"):
                for variant in VARIANTS:
                    for lang in LANGS:
                        query = f"?lang={lang}" + ("&layout=compact" if layout == "compact" else "")
                        page.goto(server.url(f"/widget/v-{variant}{query}"))
                        key = (layout, variant, lang)
                        heights.setdefault(key, []).append(page.evaluate(measure))
            context.close()
        chromium.close()
    for (layout, variant, lang), (narrow, wide) in sorted(heights.items()):
        base_narrow, base_wide = heights[(layout, "min", lang)]
        added = "" if variant == "min" else f"  adds {narrow - base_narrow}, {wide - base_wide}"
        print(f"{layout:8} {variant:10} {lang}: ({narrow}, {wide}){added}")


if __name__ == "__main__":
    main()
