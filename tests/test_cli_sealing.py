"""The command line of sealed data: `keys create-sealing` (the secret to a 0600 file, never
overwritten, never printed), partners' keys, and what `serve` says or refuses at start-up."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from server import settings
from server.domain import sealing
from server.domain.signatures import NewSignature
from tests.store import test_webhooks as webhook_tests
from tests.support import backends, live
from tests.test_cli import cli

SLUG = "save-russian-lgbt-network"
MAIL = {"SMTP_URL": "smtp://127.0.0.1:1", "MAIL_FROM": "p@example.org",
        "BASE_URL": "http://127.0.0.1:1"}  # fmt: skip


def test_create_sealing_writes_the_secret_0600_and_prints_only_the_public_key(
    tmp_path: Path,
) -> None:
    made = cli("keys", "create-sealing", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    secret_file = tmp_path / "petition-widget-sealing.secret"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    secret = secret_file.read_text().strip()
    assert len(base64.b64decode(secret)) == 32
    assert secret not in made.stdout + made.stderr
    public = re.search(r"SEALING_PUBLIC_KEY=(\S+)", made.stdout)
    assert public is not None
    key = sealing.parse_secret_key(secret)
    assert public.group(1) == sealing.encode_key(key.public_key)  # the pair belongs together
    again = cli("keys", "create-sealing", cwd=tmp_path)  # a key is never replaced
    assert again.returncode == 1 and "exists" in again.stderr
    assert secret_file.read_text().strip() == secret
    other = cli("keys", "create-sealing", "--out", str(tmp_path / "b.secret"), cwd=tmp_path)
    assert other.returncode == 0 and (tmp_path / "b.secret").read_text().strip() != secret


def test_partner_keys_are_checked_and_set(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    live.prepare(url)
    public, _ = sealing.new_key_pair()
    bad = cli("partners", "add", SLUG, "--name", "Allies", "--public-key", "not-a-key",
              "--database-url", url, cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 1 and "--public-key" in bad.stderr
    added = cli("partners", "add", SLUG, "--name", "Allies", "--public-key", public,
                "--database-url", url, cwd=tmp_path)  # fmt: skip
    assert added.returncode == 0, added.stderr
    later, _ = sealing.new_key_pair()
    assert cli("partners", "set-sealing-key", SLUG, "allies", later, "--database-url", url,
               cwd=tmp_path).returncode == 0  # fmt: skip
    missing = cli("partners", "set-sealing-key", SLUG, "nobody", later, "--database-url", url,
                  cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 1 and "no partner" in missing.stderr


def _serve(tmp_path: Path, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`serve` until it has said what it says at start-up, then stopped."""
    port = live.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--database-url", url],
        cwd=tmp_path, env={**live.LiveServer(url, tmp_path).env, **MAIL, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        process.terminate()
        out, err = process.communicate(timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_serve_warns_when_sealing_is_off_and_names_keyless_partners_when_on(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    live.prepare(url)
    # With the server's hash key: the database remembers the key that keyed it.
    cli("partners", "add", SLUG, "--name", "No Key", "--database-url", url, cwd=tmp_path,
        env={"EMAIL_HASH_KEY": live.EMAIL_HASH_KEY})  # fmt: skip
    off = _serve(tmp_path, url, SEALING_PUBLIC_KEY="")
    assert "SEALING_PUBLIC_KEY is not set" in off.stderr
    assert "partners without a sealing key of their own get no personal data" in off.stderr
    public, _ = sealing.new_key_pair()
    on = _serve(tmp_path, url, SEALING_PUBLIC_KEY=public)
    assert "SEALING_PUBLIC_KEY is not set" not in on.stderr
    assert f"{SLUG}/no-key" in on.stderr and "no personal data" in on.stderr


def test_serve_on_sqlite_generates_a_private_email_hash_key_and_keeps_it(tmp_path: Path) -> None:
    """Without EMAIL_HASH_KEY, `serve` on SQLite makes `<db>.email-hash-key` (mode 0600) and
    the next start reads the same key: an address that signed before the restart is still
    recognised after it (under a new key it could sign again)."""
    url = backends.sqlite_url(tmp_path)
    live.prepare(url)
    key_file = tmp_path / "petitions.db.email-hash-key"
    assert not key_file.exists()
    person = live.new_signer()
    counts, keys = [], []
    for _ in range(2):
        server = live.LiveServer(url, tmp_path)
        del server.env["EMAIL_HASH_KEY"]
        with server, httpx.Client(base_url=server.base_url, timeout=30) as c:
            token = c.get(f"/api/petitions/{SLUG}/token").json()["token"]
            signed = c.post(f"/api/petitions/{SLUG}/signatures", json={"token": token, **person})
            assert signed.status_code == 201, signed.text
            counts.append(c.get(f"/api/petitions/{SLUG}").json()["signatures"])
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        keys.append(key_file.read_text().strip())
        assert keys[-1] not in server.log()  # never logged
    assert keys[0] == keys[1] and len(keys[0]) >= settings.MIN_HASH_KEY
    assert counts == [1, 1]  # the second signature of the address was recognised


@pytest.mark.postgresql
def test_serve_refuses_postgresql_without_an_email_hash_key(
    tmp_path: Path, postgres: backends.PostgresDatabases
) -> None:
    refused = _serve(tmp_path, postgres.create(), EMAIL_HASH_KEY="")
    assert refused.returncode == 1
    assert "EMAIL_HASH_KEY" in refused.stderr and "Traceback" not in refused.stderr


def test_the_offline_commands_leave_nothing_behind(tmp_path: Path) -> None:
    """export, export-open and keys create-sealing run on the owner's machine: they create no
    database and no key file (settings would generate SECRET_KEYS' and EMAIL_HASH_KEY's)."""
    made = cli("keys", "create-sealing", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["petition-widget-sealing.secret"]
    secret = str(tmp_path / "petition-widget-sealing.secret")
    sealed = tmp_path / "x.sealed"
    sealed.write_text('{"petition": "p"}\n')
    opened = cli("export-open", str(sealed), "--secret-key", secret, cwd=tmp_path)
    assert "not a sealed export" in opened.stderr  # read, refused, and nothing made
    missing = tmp_path / "sub" / "none.db"
    for url in (f"sqlite:///{missing}", "sqlite:///sub/none.db"):  # absolute, then relative
        out = cli("export", SLUG, "--secret-key", secret, "--database-url", url, cwd=tmp_path)
        assert out.returncode == 1 and "nothing was created" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "petition-widget-sealing.secret", "x.sealed",
    ]  # fmt: skip


def test_export_out_makes_an_existing_file_private(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    live.prepare(url)
    _, secret = sealing.new_key_pair()
    key_file = tmp_path / "owner.secret"
    key_file.write_text(secret)
    out = tmp_path / "signers.csv"
    out.write_text("old\n")
    out.chmod(0o644)
    hash_key = {"EMAIL_HASH_KEY": live.EMAIL_HASH_KEY}
    done = cli("export", SLUG, "--secret-key", str(key_file), "--database-url", url,
               "--out", str(out), cwd=tmp_path, env=hash_key)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert "old" not in out.read_text()


def test_a_partner_whose_key_was_replaced_opens_each_keys_copies_and_hears_of_the_rest(
    tmp_path: Path,
) -> None:
    """Copies sealed before `partners set-sealing-key` open only with the old key: an export
    with either key gives the rows it opens and says how many it left out (before, the first
    unopened row aborted the whole export); the owner's key opens every row; a key that opens
    nothing is still refused."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    owner_public, owner_secret = sealing.new_key_pair()
    old_public, old_secret = sealing.new_key_pair()
    new_public, new_secret = sealing.new_key_pair()
    _, stranger_secret = sealing.new_key_pair()

    async def sign_up() -> None:
        storage, pid = await webhook_tests.opened(url)
        allies = await storage.add_partner(pid, "allies", "Allies", old_public)
        through = (allies.id, "allies")

        def signer(email: str, key: str) -> NewSignature:
            s = webhook_tests.signature(pid, email, partner=through, consent_partner=True)
            return dataclasses.replace(s, partner_key=key)

        first = [signer("a@example.org", old_public), signer("b@example.org", old_public)]
        await webhook_tests.sign(storage, *first, owner_key=owner_public)
        assert await storage.set_partner_key(pid, "allies", new_public)
        await webhook_tests.sign(
            storage, signer("c@example.org", new_public), owner_key=owner_public
        )
        await storage.disconnect()

    asyncio.run(sign_up())
    keys = {}
    for name, secret in (("owner", owner_secret), ("old", old_secret), ("new", new_secret),
                         ("stranger", stranger_secret)):  # fmt: skip
        keys[name] = tmp_path / f"{name}.secret"
        keys[name].write_text(secret)

    def export(key: str, *partner: str) -> subprocess.CompletedProcess[str]:
        return cli("export", SLUG, "--secret-key", str(keys[key]), *partner, "--format", "json",
                   "--database-url", url, cwd=tmp_path,
                   env={"EMAIL_HASH_KEY": live.EMAIL_HASH_KEY})  # fmt: skip

    def emails(done: subprocess.CompletedProcess[str]) -> list[str]:
        assert done.returncode == 0, done.stderr
        return sorted(row["email"] for row in json.loads(done.stdout))

    old, new = export("old", "--partner", "allies"), export("new", "--partner", "allies")
    assert emails(old) == ["a@example.org", "b@example.org"] and "1 row(s)" in old.stderr
    assert emails(new) == ["c@example.org"] and "2 row(s)" in new.stderr
    everyone = export("owner")
    assert emails(everyone) == ["a@example.org", "b@example.org", "c@example.org"]
    assert everyone.stderr == ""
    refused = export("stranger", "--partner", "allies")
    assert refused.returncode == 1 and "does not open" in refused.stderr
