"""The `petition-widget` command, run as a newcomer or an operator would run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server import cli as cli_module
from server.web import bundle
from tests.support import live

GOOD = """\
slug = "second-petition"
goal = 1000
title = "Second"
summary = "S"
target = "T"
statement = "We ask."
"""


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEYS")}
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=cwd,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_import_then_list(tmp_path: Path, database_url: str) -> None:
    second = tmp_path / "second.toml"
    second.write_text(GOOD)
    done = cli(
        "petitions",
        "import",
        str(bundle.EXAMPLE_PETITION),
        str(second),
        "--database-url",
        database_url,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "save-russian-lgbt-network: created" in done.stdout
    again = cli("petitions", "import", str(second), "--database-url", database_url, cwd=tmp_path)
    assert "second-petition: unchanged" in again.stdout
    listed = cli("petitions", "list", "--database-url", database_url, cwd=tmp_path)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["SLUG", "SIGNATURES", "GOAL", "TITLE"]
    assert any(line.split()[:3] == ["save-russian-lgbt-network", "0", "50,000"] for line in lines)
    assert any(line.split()[:3] == ["second-petition", "0", "1,000"] for line in lines)


def test_a_bad_file_imports_nothing(tmp_path: Path, database_url: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("goal = 1000", "goal = 0"))
    done = cli(
        "petitions",
        "import",
        str(bundle.EXAMPLE_PETITION),
        str(bad),
        "--database-url",
        database_url,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert f"{bad}:2: goal must be a whole number" in done.stderr
    listed = cli("petitions", "list", "--database-url", database_url, cwd=tmp_path)
    if database_url.startswith("sqlite"):  # not even an empty database was made
        assert listed.returncode == 1 and "nothing was created" in listed.stderr
    else:
        assert "No petitions yet" in listed.stdout


def test_duplicate_slug_across_files(tmp_path: Path) -> None:
    one, two = tmp_path / "one.toml", tmp_path / "two.toml"
    one.write_text(GOOD)
    two.write_text(GOOD)
    done = cli("petitions", "import", str(one), str(two), cwd=tmp_path)
    assert done.returncode == 1
    assert "slug 'second-petition' is also used by" in done.stderr
    assert not (tmp_path / "petition-widget.db").exists() or "created" not in done.stdout


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    done = cli("serve", cwd=tmp_path, env={"PORT": "eighty"})
    assert done.returncode == 2
    assert "PORT must be a whole number" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{live.free_port()}/nothing"
    done = cli("petitions", "list", "--database-url", url, cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot open the database" in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_serves_the_example_and_a_partner_page(tmp_path: Path) -> None:
    with live.demo(tmp_path) as (base, log):
        petition = httpx.get(base + "/api/petitions/save-russian-lgbt-network").json()
        assert petition["signatures"] == 0 and petition["goal"] == 50_000
        page = httpx.get(base + "/")
        assert page.status_code == 200
        assert f'src="{base}/embed.js"' in page.text
        assert 'data-petition="save-russian-lgbt-network"' in page.text
        key_file = tmp_path / "petition-widget-demo.db.key"
        assert key_file.exists() and oct(key_file.stat().st_mode)[-3:] == "600"
        assert key_file.read_text().strip() not in log.read_text()


def test_demo_catches_its_confirmation_mails_and_lists_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN_MIN_AGE", "0")  # the demo reads it from the environment
    monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{live.free_port()}")  # ignored: caught
    slug = "save-russian-lgbt-network"
    with live.demo(tmp_path) as (base, log):
        assert f'href="{base}/demo/mail"' in httpx.get(base + "/").text
        assert "No mail yet" in httpx.get(base + "/demo/mail").text
        token = httpx.get(f"{base}/api/petitions/{slug}/token").json()["token"]
        signer = live.new_signer("demo")
        signed = httpx.post(
            f"{base}/api/petitions/{slug}/signatures", json={"token": token, **signer}
        )
        assert signed.status_code < 300, signed.text
        deadline = time.monotonic() + 20
        while "/confirm/" not in (page := httpx.get(base + "/demo/mail")).text:
            assert time.monotonic() < deadline, "the demo's mail never reached its page"
            time.sleep(0.2)
        assert signer["email"] in page.text
        assert f'<a href="{base}/confirm/' in page.text
        assert f"{base}/demo/mail" in log.read_text()  # the banner names the page


def test_the_demo_seals_signer_data_and_shows_how_to_open_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sign, confirm from the demo's mail page, download the owner's sealed export from the
    dashboard, and open it with the command the banner prints: the signer is there, and only
    the export opened with the demo's key file names them."""
    monkeypatch.setenv("TOKEN_MIN_AGE", "0")
    slug = "save-russian-lgbt-network"
    with live.demo(tmp_path) as (base, log):
        banner = log.read_text()
        secret_file = tmp_path / cli_module.DEMO_SEALING_KEY
        assert f"--secret-key {secret_file}" in banner
        assert oct(secret_file.stat().st_mode)[-3:] == "600"
        assert secret_file.read_text().strip() not in banner
        token = httpx.get(f"{base}/api/petitions/{slug}/token").json()["token"]
        signer = live.new_signer("sealed-demo")
        signed = httpx.post(
            f"{base}/api/petitions/{slug}/signatures", json={"token": token, **signer}
        )
        assert signed.status_code == 202, signed.text
        deadline = time.monotonic() + 20
        while "/confirm/" not in (page := httpx.get(base + "/demo/mail")).text:
            assert time.monotonic() < deadline, "the demo's mail never reached its page"
            time.sleep(0.2)
        confirm = re.search(rf'href="({re.escape(base)}/confirm/[^"]+)"', page.text)
        assert confirm is not None
        assert httpx.post(confirm.group(1)).status_code == 200
        owner = re.search(r"owner's dashboard.*?/admin/login#key=(\S+)", banner)
        assert owner is not None
        with httpx.Client(base_url=base) as c:
            assert c.post("/admin/login", data={"key": owner.group(1)}).status_code == 303
            assert c.get(f"/admin/petitions/{slug}/export.csv").status_code == 409
            sealed = c.get(f"/admin/petitions/{slug}/export.sealed")
            assert sealed.status_code == 200
    assert signer["email"].encode() not in sealed.content
    download = tmp_path / "signers.sealed"
    download.write_bytes(sealed.content)
    opened = cli("export-open", str(download), "--secret-key", str(secret_file), cwd=tmp_path)
    assert opened.returncode == 0, opened.stderr
    assert signer["email"] in opened.stdout and signer["name"] in opened.stdout


def test_a_database_refuses_another_email_hash_key(tmp_path: Path) -> None:
    """A command (or server) given another EMAIL_HASH_KEY than the database was keyed with
    would recognise no address; it stops instead, saying why and never printing a key."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    first, other = (
        "first-hash-key-0123456789abcdefghijklmn",
        "other-hash-key-0123456789abcdefghijklmn",
    )
    assert cli("petitions", "import", str(bundle.EXAMPLE_PETITION), "--database-url", url,
               cwd=tmp_path, env={"EMAIL_HASH_KEY": first}).returncode == 0  # fmt: skip
    refused = cli("petitions", "list", "--database-url", url, cwd=tmp_path,
                  env={"EMAIL_HASH_KEY": other})  # fmt: skip
    assert refused.returncode == 1
    assert "another EMAIL_HASH_KEY" in refused.stderr
    assert first not in refused.stderr + refused.stdout
    assert other not in refused.stderr + refused.stdout
    # Without the variable, the file generated beside the database is a third key: refused too.
    assert cli("petitions", "list", "--database-url", url, cwd=tmp_path).returncode == 1
