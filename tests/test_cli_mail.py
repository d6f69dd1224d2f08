"""The command line and petitions that confirm signatures by email: `serve` refuses to start
when the mails could not be sent, naming the petitions and the settings; `import` warns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from server.web import bundle
from tests.support import live
from tests.test_cli import GOOD, cli

SLUG = "save-russian-lgbt-network"
NO_MAIL = {"SMTP_URL": "", "MAIL_FROM": "", "BASE_URL": ""}


def test_import_warns_and_serve_refuses_without_mail_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    imported = cli(
        "petitions", "import", str(bundle.EXAMPLE_PETITION), "--database-url", url,
        cwd=tmp_path, env=NO_MAIL,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert "warning: save-russian-lgbt-network confirms signatures by email" in imported.stderr
    for name in ("SMTP_URL", "MAIL_FROM", "BASE_URL"):
        assert name in imported.stderr
    port = str(live.free_port())
    served = cli("serve", "--port", port, "--database-url", url, cwd=tmp_path, env=NO_MAIL)
    assert served.returncode == 1
    assert "cannot serve: save-russian-lgbt-network" in served.stderr
    assert "SMTP_URL, MAIL_FROM, BASE_URL" in served.stderr
    assert "Traceback" not in served.stderr


def test_only_the_missing_settings_are_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    env = {**NO_MAIL, "SMTP_URL": "smtp://127.0.0.1:2525", "MAIL_FROM": "p@example.org"}
    imported = cli(
        "petitions", "import", str(bundle.EXAMPLE_PETITION), "--database-url", url,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert "which needs BASE_URL (see" in imported.stderr
    complete = {**env, "BASE_URL": "https://petitions.example.org"}
    again = cli("petitions", "list", "--database-url", url, cwd=tmp_path, env=complete)
    assert again.returncode == 0


def test_petitions_that_count_at_once_need_no_mail(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    counted = tmp_path / "counted.toml"
    counted.write_text(GOOD + '\n[signing]\nconfirmation = "none"\n')
    imported = cli(
        "petitions", "import", str(counted), "--database-url", url, cwd=tmp_path, env=NO_MAIL
    )
    assert imported.returncode == 0 and "warning" not in imported.stderr


def test_signatures_remove_reads_the_address_from_stdin_and_never_prints_it(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    live.prepare(url)  # the example petition, counting at once
    address = "remove.me@example.org"
    server = live.LiveServer(url, tmp_path).start()
    try:
        with httpx.Client(base_url=server.base_url) as c:
            token = c.get(f"/api/petitions/{SLUG}/token").json()["token"]
            signed = c.post(
                f"/api/petitions/{SLUG}/signatures",
                json={"token": token, "name": "Remove Me", "email": address},
            )
            assert signed.status_code == 201, signed.text
    finally:
        server.stop()
    # The server's hash key: the command finds an address by its keyed hash, as the server made
    # it (without it, on SQLite, it would make a key of its own and find nobody).
    env = {**os.environ, "EMAIL_HASH_KEY": live.EMAIL_HASH_KEY}
    done = subprocess.run(
        [sys.executable, "-m", "server", "signatures", "remove", SLUG, "--email", "-",
         "--database-url", url],
        input=" Remove.Me@example.org \n", capture_output=True, text=True, cwd=tmp_path,
        timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 counted signature(s)" in done.stdout
    assert address not in done.stdout.lower() + done.stderr.lower()
    again = subprocess.run(
        [sys.executable, "-m", "server", "signatures", "remove", SLUG, "--email", "-",
         "--database-url", url],
        input=address + "\n", capture_output=True, text=True, cwd=tmp_path, timeout=60, env=env,
    )  # fmt: skip
    assert "No signature of that address" in again.stdout
    listed = cli("petitions", "list", "--database-url", url, cwd=tmp_path, env=env)
    assert any(line.split()[:2] == [SLUG, "0"] for line in listed.stdout.splitlines())
