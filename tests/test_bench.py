"""The benchmark keeps working: a 2-second run of the real bench command on SQLite.

No speed is asserted (this machine's speed is not the code's); what must hold is that the
bench completes, prints its figures, finds the stored count equal to the signature rows equal
to the acknowledged answers, with confirmation by email finds a pending signature and exactly
one mail per `202` and a count per confirmed link, and that no signer's name or email reached
a server log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import backends

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_bench_smoke_run_completes_with_consistent_counts_and_quiet_logs(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        backends.unavailable("wrk is not installed")
    figures = tmp_path / "figures.json"
    run = tmp_path / "run"
    done = _bench(
        "bench", "--duration", "2", "--read-duration", "1",
        "--workers", "1", "--signatures", "4000", "--connections", "8", "--settle", "0",
        "--confirmation-duration", "1", "--sealing-duration", "1", "--sealing-rounds", "1",
        "--dir", str(run), "--json", str(figures), timeout=240,
    )  # fmt: skip
    headings = ("## Sign load", "## Reads", "## Confirmation by email", "## Sealed signer data",
                "## Widget weight")  # fmt: skip
    for heading in headings:
        assert heading in done.stdout

    results = json.loads(figures.read_text())["results"]
    ours = [r for r in results if r["server"] == "sqlite" and r["kind"] == "sign"]
    assert len(ours) == 1
    assert ours[0]["check"].startswith("ok: ")
    assert ours[0]["load"]["statuses"].get("201", 0) > 0
    kinds = {r["kind"] for r in results if r["server"] == "sqlite"}
    assert {"petition JSON", "live count, If-None-Match (304)", "widget document"} <= kinds
    assert any(r["server"] == "bare" and r["kind"] == "sign" for r in results)

    confirmations = json.loads(figures.read_text())["confirmation"]
    assert [c["server"] for c in confirmations] == ["sqlite"]
    for step in ("sign_none", "sign_email", "mails", "confirm"):
        assert confirmations[0][step]["check"].startswith("ok: "), step
    assert confirmations[0]["sign_email"]["load"]["statuses"].get("202", 0) > 0
    assert confirmations[0]["mails"]["sent"] > 0

    # Sealed beside unsealed, counting at once and confirming by email, with partner copies.
    sealings = json.loads(figures.read_text())["sealing"]
    assert len(sealings) == 2
    for pair in sealings:
        assert not pair["off"]["failed"] and not pair["on"]["failed"]
        assert "partner copies" in pair["on"]["check"]
    assert [p["on"]["kind"].split(",")[0] for p in sealings] == ["sign none", "sign email"]

    # The bench's signers reach the server's logs no more than real ones would.
    logs = list(run.glob("*.log"))
    assert logs
    for log in logs:
        text = log.read_text(errors="replace").lower()
        assert "bench.signer." not in text and "bench signer" not in text, log.name


def test_limit_flush_bench_measures_every_state(tmp_path: Path) -> None:
    """`python -m bench.limits`, one flush per state on SQLite: it runs, and each state it
    names is the one it timed (the bench checks the keys held and announced after each)."""
    figures = tmp_path / "limits.json"
    done = _bench(
        "bench.limits", "--rounds", "1", "--flushes", "1", "--hot", "100",
        "--dir", str(tmp_path / "run"), "--json", str(figures), timeout=120,
    )  # fmt: skip
    assert "### SQLite" in done.stdout
    states = json.loads(figures.read_text())["SQLite"]
    assert list(states) == ["bare", "idle", "hot 100", "announce 100", "adopt 100"]
    assert all(state["flushes"] == 1 and state["median_us"] > 0 for state in states.values())


def _bench(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m module args…` from the repository root, which must exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done
