"""The command line and petitions that confirm signatures by email: `serve` refuses to start
when the mails could not be sent, naming the petitions and the settings; `import` warns."""

from __future__ import annotations

from pathlib import Path

from server.web import bundle
from tests.support import live
from tests.test_cli import GOOD, cli

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
