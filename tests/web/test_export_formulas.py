"""Formulas in exports, end to end: a signer named like a formula is exported with the `'` in
every plain format the dashboard serves (CSV and XLSX, the owner's and the partner's, which
exist while sealing is off) and in the CLI's offline exports, which share `domain.export`."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.domain import access_keys, sealing
from server.store.storage import Storage
from tests.support import live
from tests.web.test_spreadsheet import cells

SLUG = "save-russian-lgbt-network"
ADMIN = f"/admin/petitions/{SLUG}"
HOSTILE = "x;=1+2;y"
SAFE = "x;'=1+2;y"


def _keys(url: str) -> tuple[str, str]:
    async def run() -> tuple[str, str]:
        storage = Storage(url)
        await storage.connect()
        try:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            partner = await storage.add_partner(pid, "ngo-f", "NGO F")
            owner = access_keys.generate(access_keys.OWNER)
            await storage.add_access_key(owner.id, owner.role, owner.digest, "test")
            mine = access_keys.generate(access_keys.PARTNER)
            await storage.add_access_key(
                mine.id, mine.role, mine.digest, "test", petition_id=pid, partner_id=partner.id
            )
            return owner.text, mine.text
        finally:
            await storage.disconnect()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def keys(server: live.LiveServer) -> tuple[str, str]:
    owner, partner = _keys(server.env["DATABASE_URL"])
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        for _ in range(200):  # the registry learns of the new partner within COUNT_REFRESH
            if "NGO F" in c.get(f"/widget/{SLUG}", params={"partner": "ngo-f"}).text:
                break
            time.sleep(0.05)
        token = c.get(f"/api/petitions/{SLUG}/token", params={"partner": "ngo-f"}).json()
        person = live.new_signer()
        signed = c.post(
            f"/api/petitions/{SLUG}/signatures",
            json={"token": token["token"], **person, "name": HOSTILE, "consent_partner": True},
        )
        assert signed.status_code == 201, signed.text
    return owner, partner


@pytest.mark.parametrize("who", ["owner", "partner"])
def test_dashboard_exports_neutralise_a_formula_after_a_separator(
    server: live.LiveServer, keys: tuple[str, str], who: str
) -> None:
    key = keys[0] if who == "owner" else keys[1]
    base = ADMIN if who == "owner" else f"{ADMIN}/partners/ngo-f"
    bearer = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.base_url, timeout=30, headers=bearer) as c:
        as_csv = c.get(f"{base}/export.csv")
        assert as_csv.status_code == 200
        names = [r["name"] for r in csv.DictReader(io.StringIO(as_csv.text))]
        assert SAFE in names and HOSTILE not in names
        as_xlsx = c.get(f"{base}/export.xlsx")  # exists while sealing is off
        assert as_xlsx.status_code == 200
        assert as_xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
        sheet = cells(as_xlsx.content)
        column = sheet[0].index("name")
        found = [r[column] for r in sheet[1:]]
        assert SAFE in found and HOSTILE not in found


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_cli_offline_export_neutralises_a_formula_after_a_separator(
    server: live.LiveServer, keys: tuple[str, str], tmp_path: Path, fmt: str
) -> None:
    _, secret = sealing.new_key_pair()
    secret_file = tmp_path / "secret.key"
    secret_file.write_text(secret)
    out = tmp_path / f"export.{fmt}"
    result = subprocess.run(
        [sys.executable, "-m", "server", "export", SLUG, "--database-url",
         server.env["DATABASE_URL"], "--secret-key", str(secret_file), "--format", fmt,
         "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "EMAIL_HASH_KEY": live.EMAIL_HASH_KEY},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    if fmt == "csv":
        names = [r["name"] for r in csv.DictReader(io.StringIO(out.read_text()))]
    else:
        sheet = cells(out.read_bytes())
        names = [r[sheet[0].index("name")] for r in sheet[1:]]
    assert SAFE in names and HOSTILE not in names
