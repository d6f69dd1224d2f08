"""CONTRIBUTING.md's "Adding a language", kept true: the section names files and commands that
exist, and following its steps on a copy of the repository with a made-up Polish catalog
changes only that catalog and the generated language lists, after which the per-language tests
pass for Polish too (the widget rendered in it over HTTP, a signing round trip, its mail), and
its badge, mails, country names and consent texts are Polish, with no code changed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from server.domain import i18n

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("server", "widget", "examples", "scripts", "tests", "docs")
COPIED_FILES = ("README.md", "CONTRIBUTING.md", "pyproject.toml")


def section() -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    start = text.index("## Adding a language")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_section_names_only_what_exists() -> None:
    text = section()
    steps = re.findall(r"^\d+\. \*\*(.+?)\*\*", text, re.MULTILINE)
    assert len(steps) == 7, steps
    found = re.findall(r"(?<![/\w])((?:server|tests|scripts|docs|widget)/[\w/.-]*\w)", text)
    paths = {path for path in found if not path.startswith("server/domain/locales/LL")}
    assert "server/domain/locales/LL.toml" in text
    assert "scripts/languages.py" in paths and "tests/web/test_languages.py" in paths
    for path in paths:
        assert (ROOT / path).exists(), path
    assert "one file" in text
    for key in i18n.CONSENT_KEYS:
        assert f"`{key}`" in text  # step 3 names every consent text the test expects


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and "test-artifacts" not in p.parts
    }


def run(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    env["PYTHONPATH"] = str(copy)
    return subprocess.run(
        [sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=600
    )


# What a translator writes for Polish, following steps 1 to 4 (the rest of the messages stay
# English here: the test is about the steps, not the words).
POLISH = {
    "signed_count": '{ one = "Podpisała {count} osoba", few = "Podpisały {count} osoby", '
    'many = "Podpisało {count} osób", other = "Podpisało {count} osoby" }',
    "sign_button": '"Podpisz"',
    "badge_count": '"Podpisy: {count}"',
    "mail_subject": '"Potwierdź swój podpis"',
}

IN_THE_COPY = """
from server.domain import countries, i18n, mail, petitions
from server.domain.signatures import consent_wording
from server.web import badge

assert "pl" in i18n.LANGUAGES and "pl" not in i18n.DASHBOARD_LANGUAGES
petition = petitions.parse('''
slug = "p"
goal = 50000
title = "T"
summary = "S"
target = "X"
statement = "Y"
organiser = "O"
[translations.pl]
title = "Tytuł"
''')
assert "Podpisy: 1\\u00a0234" in badge.render(1234, 50000, lang="pl")
message = mail.compose({"kind": "confirm", "to": "a@example.org", "lang": "pl", "withdraw": "w",
                        "confirm": "c"}, petition, base_url="https://x", mail_from="m@x",
                       confirm_lifetime=86400)
assert message["Subject"] == "Potwierdź swój podpis" and "Tytuł" in message.get_body().get_content()
assert countries.name("DE", "pl") == "Niemcy"
pl = i18n.catalog("pl")
assert pl.plural("signed_count", 22) == "Podpisały 22 osoby"
assert pl.plural("signed_count", 25) == "Podpisało 25 osób"
assert i18n.choose_language(None, "pl-PL,pl;q=0.9", petition.languages, "en") == "pl"
assert i18n.choose_language(None, "pl-PL", i18n.DASHBOARD_LANGUAGES, "en") == "en"
print("ok")
"""


def test_following_the_steps_adds_a_language(tmp_path: Path) -> None:
    copy = tmp_path / "repository"
    ignore = shutil.ignore_patterns("__pycache__", "test-artifacts", ".venv")
    for name in COPIED:
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    for name in COPIED_FILES:
        shutil.copy(ROOT / name, copy / name)
    before = snapshot(copy)

    # Steps 1 to 4: the catalog, copied from English, its plural forms and a few words
    # translated, the consent texts marked unreviewed, the dashboard left out.
    english = (copy / "server/domain/locales/en.toml").read_text()
    lines = english.split("\n[dashboard]")[0].splitlines()
    for i, line in enumerate(lines):
        key = line.split(" = ", 1)[0]
        if key in POLISH and " = " in line:
            lines[i] = f"{key} = {POLISH[key]}"
    review = ["", "[review]", *(f'{key} = "unreviewed"' for key in i18n.CONSENT_KEYS)]
    (copy / "server/domain/locales/pl.toml").write_text("\n".join(lines + review) + "\n")

    # Step 5: the language lists are stale until the script rewrites them.
    assert run(copy, "scripts/languages.py", "--check").returncode == 1
    assert run(copy, "scripts/languages.py").returncode == 0
    assert run(copy, "scripts/languages.py", "--check").returncode == 0
    assert "Polish (`pl`)" in (copy / "README.md").read_text()

    after = snapshot(copy)
    changed = {path for path, body in after.items() if before.get(path) != body}
    assert changed == {
        "server/domain/locales/pl.toml",
        "README.md",
        "docs/petition-format.md",
        "docs/widget.md",
    }

    # The language at work, in the copy's own interpreter.
    checked = run(copy, "-c", IN_THE_COPY)
    assert checked.stdout.strip() == "ok", checked.stderr[-3000:]

    # Step 6: the per-language tests pass for it, with no other change (SQLite only here).
    tests = run(
        copy,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "pl and not postgresql",
        "tests/web/test_languages.py",
        "tests/domain/test_i18n.py",
        "tests/domain/test_mail.py",
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert re.search(r"\b(\d+) passed", tests.stdout), tests.stdout[-500:]
