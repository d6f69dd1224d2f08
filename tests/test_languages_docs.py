"""The lists of shipped languages in README.md, docs/petition-format.md and docs/widget.md are
generated from the catalogs (scripts/languages.py) and must be current: a new catalog file,
or a consent text signed off, changes them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from server.domain import i18n

ROOT = Path(__file__).resolve().parents[1]
FILES = ("README.md", "docs/petition-format.md", "docs/widget.md")


def test_the_language_lists_are_current() -> None:
    checked = subprocess.run(
        [sys.executable, "scripts/languages.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr


def test_every_list_names_every_language() -> None:
    for name in FILES:
        text = (ROOT / name).read_text()
        assert "<!-- languages:" in text, name
        block = text.split("<!-- languages:", 1)[1].split("<!-- /languages:", 1)[0]
        for lang in i18n.LANGUAGES:
            assert f"`{lang}`" in block, (name, lang)


def test_a_stale_list_is_rewritten() -> None:
    spec = importlib.util.spec_from_file_location("languages", ROOT / "scripts/languages.py")
    assert spec is not None and spec.loader is not None
    languages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(languages)
    stale = "x <!-- languages:codes -->`en`, `ru`<!-- /languages:codes --> y"
    fresh = languages.rewritten(stale)
    assert fresh != stale and "`ar`" in fresh and fresh.startswith("x <!-- languages:codes -->")
    assert languages.rewritten(fresh) == fresh
