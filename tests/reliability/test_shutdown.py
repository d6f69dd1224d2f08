"""SIGTERM under load: signatures in flight finish and are acknowledged, new ones are refused
cleanly (the connection is refused, never a 5xx), and nothing acknowledged is missing."""

from __future__ import annotations

from pathlib import Path

from tests.support import db, live
from tests.support.load import SignLoad


def test_sigterm_finishes_in_flight_signatures(tmp_path: Path, database_url: str) -> None:
    live.prepare(database_url)
    server = live.LiveServer(database_url, tmp_path).start()
    load = SignLoad(server.base_url, concurrency=32).start()
    try:
        load.wait_for(200)
        acknowledged_at_signal = len(load.acked)  # 32 are in flight at any moment
        exit_code = server.stop()  # SIGTERM, then wait for the process to end
        acknowledged_at_exit = len(load.acked)
    finally:
        load.stop()
        server.kill()
    # uvicorn finishes gracefully, then re-raises the signal so the exit status says SIGTERM.
    assert exit_code in (0, -15)
    assert "Application shutdown complete" in server.log()
    # Signatures in flight at the signal were finished and answered, not dropped...
    assert acknowledged_at_exit > acknowledged_at_signal
    # ...and after the process ended, nothing more could have been acknowledged.
    assert len(load.acked) == acknowledged_at_exit
    # Whatever was not acknowledged failed at the connection: no error answers at all.
    answered = {k for k in load.outcomes if k.isdigit()}
    assert answered == {"201"}, load.outcomes
    report = db.audit(database_url)
    # Every acknowledged signature is stored, and every stored one was acknowledged: requests
    # in flight were completed and answered, not dropped after their commit.
    assert report["emails"] == set(load.acked)
    assert report["counted"] == report["rows"] == len(load.acked)
