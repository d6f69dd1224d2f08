from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from server import settings
from server.settings import SettingsError, load

README = Path(__file__).parent.parent / "README.md"


def test_defaults_generate_a_private_key_beside_the_database(tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    s = load({"DATABASE_URL": f"sqlite:///{db}"})
    key_file = tmp_path / "data.db.key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert s.secret_keys == (key_file.read_text().strip(),)
    assert len(s.secret_keys[0]) >= 40
    # The same key the next time: tokens survive a restart.
    assert load({"DATABASE_URL": f"sqlite:///{db}"}).secret_keys == s.secret_keys


def test_on_sqlite_the_email_hash_key_is_generated_once_private_and_kept(tmp_path: Path) -> None:
    """EMAIL_HASH_KEY, unset on SQLite: generated beside the database with mode 0600, and the
    same key at every later load (a new key would let every address sign again)."""
    db = tmp_path / "data.db"
    s = load({"DATABASE_URL": f"sqlite:///{db}"})
    key_file = tmp_path / "data.db.email-hash-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert s.email_hash_key == key_file.read_text().strip()
    assert len(s.email_hash_key) >= settings.MIN_HASH_KEY
    assert s.email_hash_key not in s.secret_keys  # a key of its own, not the session key
    again = load({"DATABASE_URL": f"sqlite:///{db}"})
    assert again.email_hash_key == s.email_hash_key
    assert key_file.read_text().strip() == s.email_hash_key  # not rewritten


def test_an_email_hash_key_shorter_than_the_minimum_is_refused(tmp_path: Path) -> None:
    base = {"DATABASE_URL": f"sqlite:///{tmp_path / 'data.db'}", "SECRET_KEYS": "k"}
    short = "k" * (settings.MIN_HASH_KEY - 1)
    with pytest.raises(SettingsError, match=f"at least {settings.MIN_HASH_KEY} characters"):
        load({**base, "EMAIL_HASH_KEY": short})
    assert load({**base, "EMAIL_HASH_KEY": short + "k"}).email_hash_key == short + "k"


def test_secret_keys_list_and_overrides(tmp_path: Path) -> None:
    s = load({"SECRET_KEYS": "new, old ,", "PORT": "9000"}, port=9100, host=None)
    assert s.secret_keys == ("new", "old")
    assert s.port == 9100
    assert s.base_url == "http://127.0.0.1:9100"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"PORT": "eighty"}, "PORT must be a whole number"),
        ({"WORKERS": "0"}, "WORKERS must be at least 1"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must start with"),
        ({"DATABASE_URL": "sqlite:///x.db?timeout=5"}, "no options"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8, not-an-address"}, "TRUSTED_PROXIES"),
        ({"SQLITE_SYNCHRONOUS": "off"}, "SQLITE_SYNCHRONOUS"),
        ({"COUNT_REFRESH": "soon"}, "COUNT_REFRESH must be a number"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        load({"SECRET_KEYS": "k", **env})


def test_postgres_scheme_alias() -> None:
    s = load({"SECRET_KEYS": "k", "DATABASE_URL": "postgres://u@h/db"})
    assert s.database_url == "postgresql://u@h/db"


def test_readme_documents_exactly_the_settings() -> None:
    text = README.read_text()
    table = text.split("<!-- settings-table -->")[1].split("<!-- /settings-table -->")[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.+?) \|", table, re.M)
    documented = {name: default for name, default in rows}
    assert set(documented) == set(settings.SETTINGS)
    for name, setting in settings.SETTINGS.items():
        expected = f"`{setting.default}`" if setting.default else "(none)"
        assert documented[name] == expected, name


def test_no_setting_is_read_outside_the_table() -> None:
    source = "\n".join(p.read_text() for p in (README.parent / "server").rglob("*.py"))
    read = set(re.findall(r"environ(?:\.get)?\(\s*[\"']([A-Z_]+)", source))
    assert read <= set(settings.SETTINGS) | {"PETITION_WIDGET_REQUIRE_ALL"}, read


def test_readable_key_file_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = tmp_path / "k.key"
    key.write_text("a-key\n")
    os.chmod(key, 0o644)
    assert load({"SECRET_KEY_FILE": str(key)}).secret_keys == ("a-key",)
    assert "readable by others" in caplog.text
    assert "a-key" not in caplog.text


def test_header_timeout_must_be_shorter_than_the_request_time() -> None:
    base = {"SECRET_KEYS": "k", "DATABASE_URL": "postgresql://u@h/db"}
    assert load(base).header_timeout == 5.0
    assert load({**base, "CLIENT_TIMEOUT": "4"}).header_timeout == 2.0  # unset: follows it
    assert load({**base, "HEADER_TIMEOUT": "2.5"}).header_timeout == 2.5
    for value in ("10", "12"):
        with pytest.raises(settings.SettingsError, match=r"HEADER_TIMEOUT .* CLIENT_TIMEOUT"):
            load({**base, "HEADER_TIMEOUT": value})
    with pytest.raises(settings.SettingsError, match="HEADER_TIMEOUT must be a number"):
        load({**base, "HEADER_TIMEOUT": "soon"})


def test_connections_sending_headers_stay_below_a_workers_connections() -> None:
    base = {"SECRET_KEYS": "k", "DATABASE_URL": "postgresql://u@h/db"}
    assert load(base).max_connections_sending_headers == 1024
    for value, message in (("4096", "below 4096"), ("0", "at least 1"), ("x", "whole number")):
        with pytest.raises(
            settings.SettingsError, match=f"MAX_CONNECTIONS_SENDING_HEADERS.*{message}"
        ):
            load({**base, "MAX_CONNECTIONS_SENDING_HEADERS": value})
