"""kill -9 in the middle of a sign load, on SQLite and PostgreSQL: after a restart, every
acknowledged signature is there, the count equals the rows, and the database is intact."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import db, live
from tests.support.load import SLUG, SignLoad


def test_kill_9_loses_no_acknowledged_signature(tmp_path: Path, database_url: str) -> None:
    live.prepare(database_url)
    server = live.LiveServer(database_url, tmp_path).start()
    load = SignLoad(server.base_url, concurrency=24).start()
    try:
        load.wait_for(300)
        server.kill()  # SIGKILL: no shutdown, no flush, the writer dies mid-group
    finally:
        load.stop()
        server.kill()
    acknowledged = set(load.acked)
    assert len(acknowledged) >= 300

    with live.LiveServer(database_url, tmp_path) as restarted:
        count = httpx.get(restarted.url(f"/api/petitions/{SLUG}")).json()["signatures"]
    report = db.audit(database_url)
    assert report["integrity"] == "ok"
    assert acknowledged <= report["emails"], len(acknowledged - report["emails"])
    assert report["counted"] == report["rows"] == count == len(report["emails"])
    assert report["orphan_nonces"] == 0  # no token claimed without its signature
