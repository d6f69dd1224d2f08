"""`petition-widget signatures remove` never prints an address typed on the command line by
mistake: the address belongs on a prompt or standard input (`--email -`), and whatever lands
in a terminal's scrollback, a CI log or a screen share must not repeat it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import live

SLUG = "save-russian-lgbt-network"


def run(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEYS")}
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=cwd,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "where",
    ["--email ADDRESS", "--email=ADDRESS", "--em ADDRESS", "after the slug", "as the slug"],
)
def test_an_address_on_the_command_line_is_refused_and_never_echoed(
    tmp_path: Path, where: str
) -> None:
    """argparse quoted it back: "argument --email: invalid choice: 'x@y' (choose from '-')",
    "unrecognized arguments: x@y", and the command itself said "no petition 'x@y'"."""
    address = live.new_signer("cli")["email"]
    database = ["--database-url", f"sqlite:///{tmp_path / 'p.db'}"]
    argv = {
        "--email ADDRESS": [SLUG, "--email", address],
        "--email=ADDRESS": [SLUG, f"--email={address}"],
        "--em ADDRESS": [SLUG, "--em", address],  # argparse takes a flag's unambiguous prefix
        "after the slug": [SLUG, address],
        "as the slug": [address, "--email", "-"],
    }[where]
    # Even the address on standard input (of another signer) must not be read back.
    done = run("signatures", "remove", *argv, *database, cwd=tmp_path, stdin="zt.in@example.org\n")
    assert done.returncode != 0
    printed = (done.stdout + done.stderr).lower()
    assert address.lower() not in printed
    assert address.split("@")[0].lower() not in printed  # not even its local part
    assert "zt.in" not in printed
    assert "Traceback" not in done.stderr
    assert done.stderr.strip(), "the operator is told what went wrong"
