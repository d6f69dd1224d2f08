"""A newcomer's traps: commands that only read never create a database (a key made in a new,
empty `petition-widget.db` opens nothing on the demo's server), and a second `demo` on a busy
port touches no key of the running one. Run as a newcomer runs them, in a directory of their
own, without DATABASE_URL."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from server.web import bundle
from tests.support import live
from tests.test_cli import cli

SLUG = "save-russian-lgbt-network"
DEMO_URL = "sqlite:///petition-widget-demo.db"
# Every command that reads or changes an existing database, with arguments it would accept.
READERS = [
    ("keys", "list"),
    ("keys", "create-owner"),
    ("keys", "revoke", "1"),
    ("partners", "list", SLUG),
    ("partners", "add", SLUG, "--name", "Friends"),
    ("signatures", "remove", SLUG, "--email", "-"),
    ("petitions", "list"),
    ("export", SLUG, "--secret-key", "owner.secret"),
    ("delivery", SLUG, "--out", "pack"),
    ("seal",),
    ("retention", "run"),
    ("webhooks", "add", SLUG, "https://crm.example.org/hook"),
    ("webhooks", "list"),
    ("webhooks", "remove", "1"),
    ("webhooks", "rotate", "1"),
    ("webhooks", "test", "1"),
]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_command_that_only_reads_creates_nothing_and_names_the_demos_database(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = cli(*command, cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "there is no petition-widget.db" in done.stderr
    assert "DATABASE_URL is not set" in done.stderr
    assert "petition-widget-demo.db" in done.stderr
    assert f"--database-url {DEMO_URL}" in done.stderr
    assert "only `petitions import`, `serve` and `demo` create a database" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no database, and no key file beside it


def test_after_the_demo_the_message_says_its_database_is_here(tmp_path: Path) -> None:
    made = cli("petitions", "import", str(bundle.EXAMPLE_PETITION), "--database-url", DEMO_URL,
               cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    refused = cli("keys", "create-owner", cwd=tmp_path)
    assert refused.returncode == 1
    assert "The demo's database, petition-widget-demo.db, is here" in refused.stderr
    assert not (tmp_path / "petition-widget.db").exists()
    done = cli("keys", "create-owner", "--database-url", DEMO_URL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"pwo_\w+", done.stdout)


def test_a_named_missing_database_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    done = cli("petitions", "list", "--database-url", url, cwd=tmp_path)
    assert done.returncode == 1
    assert f"there is no {tmp_path / 'elsewhere.db'}" in done.stderr
    assert "DATABASE_URL is not set" not in done.stderr
    assert not (tmp_path / "elsewhere.db").exists()


def test_only_import_creates_a_database(tmp_path: Path) -> None:
    done = cli("petitions", "import", str(bundle.EXAMPLE_PETITION), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "petition-widget.db").exists()
    listed = cli("petitions", "list", cwd=tmp_path)
    assert listed.returncode == 0 and SLUG in listed.stdout


def test_a_second_demo_on_a_busy_port_leaves_the_running_demos_keys_alone(
    tmp_path: Path,
) -> None:
    with live.demo(tmp_path) as (base, log):
        owner = re.search(r"owner's dashboard.*?/admin/login#key=(\S+)", log.read_text())
        assert owner is not None
        port = base.rsplit(":", 1)[1]
        second = cli("demo", "--port", port, cwd=tmp_path)
        assert second.returncode == 1
        assert f"127.0.0.1:{port} is in use" in second.stderr
        assert "--port" in second.stderr and "Traceback" not in second.stderr
        with httpx.Client(base_url=base) as c:
            signed_in = c.post("/admin/login", data={"key": owner.group(1)})
            assert signed_in.status_code == 303  # the running demo's key still works
