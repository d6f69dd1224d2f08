"""Storage going away under load: PostgreSQL unreachable, SQLite locked and read-only, a full
disk. Each time: 503 with Retry-After, /healthz says why, nothing half-written, and the server
recovers by itself once storage is back."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from server.domain import access_keys
from tests.support import backends, db, live
from tests.support.load import SignLoad
from tests.support.proxy import Proxy

SLUG = "save-russian-lgbt-network"


def health(server: live.LiveServer) -> httpx.Response:
    return httpx.get(server.url("/healthz"), timeout=30)


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.1)


def check_consistent(url: str, load: SignLoad) -> None:
    report = db.audit(url)
    assert report["integrity"] == "ok"
    assert set(load.acked) <= report["emails"]
    assert report["counted"] == report["rows"] == len(report["emails"])
    assert report["orphan_nonces"] == 0


def test_postgresql_unreachable_mid_load(
    tmp_path: Path, postgres: backends.PostgresDatabases
) -> None:
    direct = postgres.create()
    parts = urllib.parse.urlsplit(direct)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    url = urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    live.prepare(url)
    server = live.LiveServer(url, tmp_path).start()
    load = SignLoad(server.base_url).start()
    try:
        load.wait_for(100)
        proxy.cut()
        load.wait_for_outcome("503")
        assert load.retry_after == {"5"}
        # Requests that read the database outside the sign path: 503 too, never a 500.
        key = access_keys.generate(access_keys.OWNER).text  # well formed, so it is looked up
        keyed = httpx.get(
            server.url(f"/api/petitions/{SLUG}"), headers={"Authorization": f"Bearer {key}"}
        )
        assert keyed.status_code == 503 and keyed.headers["retry-after"] == "5", keyed.text
        assert keyed.json()["error"] == "storage_unavailable"
        down = health(server)
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable" and down.json()["problems"]
        proxy.restore()
        recovered_from = len(load.acked)
        load.wait_for(recovered_from + 100)  # signing again, with no restart
        wait_until(lambda: health(server).status_code == 200)
    finally:
        load.stop()
        server.stop()
        proxy.close()
    assert not {k for k in load.outcomes if k.startswith("5") and k != "503"}
    check_consistent(direct, load)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs: a disk we can fill. Needs root (CI runs as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        backends.unavailable(f"cannot mount a tmpfs for the full-disk test: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_mid_load(tmp_path: Path, small_disk: Path) -> None:
    url = backends.sqlite_url(small_disk)
    live.prepare(url)
    server = live.LiveServer(url, tmp_path).start()
    load = SignLoad(server.base_url).start()
    filler = small_disk / "filler"
    try:
        load.wait_for(100)
        with filler.open("wb") as f, contextlib.suppress(OSError):
            while True:  # until the disk is full
                f.write(b"\0" * 65536)
        load.wait_for_outcome("503")
        assert load.retry_after == {"5"}
        down = health(server)
        assert down.status_code == 503
        assert "SQLITE_FULL" in str(down.json()["problems"])
        filler.unlink()
        recovered_from = len(load.acked)
        load.wait_for(recovered_from + 100)
        wait_until(lambda: health(server).status_code == 200)
    finally:
        load.stop()
        server.stop()
    assert not {k for k in load.outcomes if k.startswith("5") and k != "503"}
    check_consistent(url, load)


def assert_form_kept_with_retry_after(server: live.LiveServer) -> None:
    """Someone without JavaScript gets the form back as typed, with the 503's Retry-After."""
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        page = c.get(f"/widget/{SLUG}").text
        token = re.search(r'name="token" value="([^"]+)"', page)
        assert token is not None
        person = live.new_signer("-nojs")
        answer = c.post(
            f"/api/petitions/{SLUG}/signatures",
            data={"token": token.group(1), "lang": "en", **person},
            headers={"Accept": "text/html"},
        )
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.headers["content-type"].startswith("text/html")
    assert f'value="{person["name"]}"' in answer.text
    assert f'value="{person["email"]}"' in answer.text


def test_sqlite_locked_then_read_only(tmp_path: Path) -> None:
    """Another process holds the write lock past the busy timeout, and meanwhile the file is
    made read-only: 503s, then recovery once both are over, without a restart.

    The server runs without CAP_DAC_OVERRIDE, so file permissions bind it although it is root.
    (A permission change alone does not affect a file a process already holds open: the lock
    makes the writer drop its connection and meet the new permissions when it reopens.)
    """
    if shutil.which("setpriv") is None:
        backends.unavailable("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE")
    folder = tmp_path / "data"
    folder.mkdir()
    url = backends.sqlite_url(folder)
    live.prepare(url)
    server = live.LiveServer(url, tmp_path)
    server.command = [
        "setpriv",
        "--bounding-set",
        "-dac_override,-dac_read_search",
        "--",
        *server.command,
    ]
    server.start()
    load = SignLoad(server.base_url).start()
    files = sorted(folder.glob("petitions.db*"))
    try:
        load.wait_for(100)
        blocker = sqlite3.connect(folder / "petitions.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the write lock, held past the 5 s busy timeout
        for path in files:
            os.chmod(path, 0o444)
        os.chmod(folder, 0o555)
        load.wait_for_outcome("503", timeout=20)
        assert load.retry_after == {"5"}
        blocker.execute("ROLLBACK")
        blocker.close()
        time.sleep(0.5)
        down = health(server)
        assert down.status_code == 503, down.text
        assert down.json()["problems"], down.text  # says why
        assert_form_kept_with_retry_after(server)
        os.chmod(folder, 0o755)
        for path in files:
            os.chmod(path, 0o644)
        recovered_from = len(load.acked)
        load.wait_for(recovered_from + 100)
        wait_until(lambda: health(server).status_code == 200)
    finally:
        os.chmod(folder, 0o755)
        for path in files:
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        load.stop()
        server.stop()
    assert not {k for k in load.outcomes if k.startswith("5") and k != "503"}
    check_consistent(url, load)
