"""The layering's rule that a tool other than import-linter must check: SQL text, transactions
and engine-specific code live only in `server/store/` (the issue's own `git grep`)."""

from __future__ import annotations

import re
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1] / "server"
SQL = re.compile(r"BEGIN|COMMIT|ROLLBACK|SELECT |INSERT ")


def test_sql_lives_only_in_the_store() -> None:
    found = [
        f"{path.relative_to(SERVER.parent)}:{number}: {line.strip()}"
        for path in sorted(SERVER.rglob("*.py"))
        if "store" not in path.relative_to(SERVER).parts[:1]
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if SQL.search(line)
    ]
    assert not found, "SQL outside server/store/:\n" + "\n".join(found)


def test_the_check_would_see_sql_outside_the_store() -> None:
    """The pattern matches what it must (so the test above can fail)."""
    assert SQL.search('await conn.execute("SELECT 1")')
    assert SQL.search("conn.execute('BEGIN IMMEDIATE')")
    assert not SQL.search("selected = select_language(lang)")
