"""Exports: CSV and JSON shaping (pure), the consent filter in storage on both engines, constant
memory over 100,000 rows, and a client that hangs up half-way through on a live server."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import re
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import httpx
import pytest

from server.domain import access_keys, export, sealing
from server.domain.export import ExportRow
from server.domain.signatures import Consent, NewSignature
from server.domain.validation import validate_signer
from server.store.sqlite import sqlite_path
from server.store.storage import Storage
from server.store.writer import create_writer
from tests.support import live, petitions

EXAMPLE = petitions.example()


def row(**changes: object) -> ExportRow:
    values: dict[str, object] = {
        "id": 1,
        "created_at": 1_764_000_000,
        "name": "Anna Petrova",
        "email": "anna@example.org",
        "country": "DE",
        "comment": None,
        "lang": "en",
        "partner_code": "ngo-a",
        "partner_name": "NGO A",
        "unknown_partner": None,
        "consent_organiser": True,
        "consent_partner": False,
        "consent_version": "v1",
        "consent_text": "I agree.",
    }
    values.update(changes)
    return ExportRow(**values)  # type: ignore[arg-type]


async def stream(rows: Iterable[ExportRow]) -> AsyncIterator[ExportRow]:
    for r in rows:
        yield r


def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    async def run() -> list[bytes]:
        return [chunk async for chunk in chunks]

    return asyncio.run(run())


def csv_text(
    rows: Iterable[ExportRow], columns: Sequence[str] = export.OWNER_COLUMNS, **options: bool
) -> str:
    return b"".join(collect(export.csv_chunks(stream(rows), columns, **options))).decode()


# --- Shaping (pure) ------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_starts_are_neutralised(first: str) -> None:
    assert (
        export.neutralise(first + 'HYPERLINK("http://x")') == "'" + first + 'HYPERLINK("http://x")'
    )


@pytest.mark.parametrize("text", ["", "Anna", "1+1", "a=b", " =1", "'quoted", "Ünal", "日本"])
def test_other_text_is_left_alone(text: str) -> None:
    assert export.neutralise(text) == text


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("x;=1+2;y", "x;'=1+2;y"),  # Excel with `;` as its separator reads the cell `=1+2`
        ("a,+1", "a,'+1"),
        ("a|-1", "a|'-1"),
        ("a\t@SUM(A1)", "a\t'@SUM(A1)"),
        ("a;\t=1", "a;'\t'=1"),  # a tab after a separator, and what follows the tab
        ("a;\r=1", "a;'\r=1"),
        ("=1;=2", "'=1;'=2"),
        ("a; =1", "a; =1"),  # a space is no separator
        ("1+1;a=b", "1+1;a=b"),
    ],
)
def test_a_formula_after_a_separator_inside_a_cell_is_neutralised(text: str, safe: str) -> None:
    assert export.neutralise(text) == safe
    assert export.csv_cell(text) == safe


def test_every_text_cell_is_neutralised_in_the_csv() -> None:
    hostile = row(
        name="=cmd|' /C calc'!A0",
        email="@SUM(1+1)",
        comment="-2+3",
        country="+1",
        partner_name="\tNGO",
        consent_text="\r=1",
    )
    parsed = next(csv.DictReader(io.StringIO(csv_text([hostile]))))
    for column in ("name", "email", "comment", "country", "partner_name", "consent_text"):
        assert parsed[column].startswith("'"), column
    assert parsed["id"] == "1"  # numbers are ours, not text


def test_csv_has_a_header_quotes_properly_and_keeps_utf8() -> None:
    tricky = row(name='Ольга "Оля", Иванова', comment="line one\nline two", country=None)
    text = csv_text([tricky, row(id=2)])
    lines = text.split("\r\n")
    assert lines[0] == ",".join(export.OWNER_COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))
    assert parsed[0]["name"] == 'Ольга "Оля", Иванова'
    assert parsed[0]["comment"] == "line one\nline two"
    assert parsed[0]["country"] == ""
    assert parsed[0]["signed_at"] == "2025-11-24T16:00:00Z"
    assert (parsed[0]["consent_organiser"], parsed[0]["consent_partner"]) == ("true", "false")
    assert len(parsed) == 2


def test_csv_byte_order_mark_only_when_asked() -> None:
    assert csv_text([row()], bom=True).startswith("\ufeffid,")
    assert csv_text([row()]).startswith("id,")


def test_an_empty_export_is_just_the_header() -> None:
    assert csv_text([]) == ",".join(export.OWNER_COLUMNS) + "\r\n"
    assert json.loads(b"".join(collect(export.json_chunks(stream([]), ["name"])))) == []


def test_partner_columns_leave_out_what_a_partner_does_not_need() -> None:
    parsed = next(csv.DictReader(io.StringIO(csv_text([row()], export.PARTNER_COLUMNS))))
    assert set(parsed) == set(export.PARTNER_COLUMNS)
    assert not {"comment", "consent_organiser", "id", "partner_name"} & set(parsed)


def test_json_is_one_valid_array_with_raw_values() -> None:
    rows = [row(id=i, name=f"=Name {i}", comment=None) for i in range(3)]
    data = json.loads(b"".join(collect(export.json_chunks(stream(rows), export.OWNER_COLUMNS))))
    assert [d["id"] for d in data] == [0, 1, 2]
    assert data[0]["name"] == "=Name 0"  # JSON is for programs: no spreadsheet escaping
    assert data[0]["comment"] is None and data[0]["consent_organiser"] is True


def test_output_comes_in_bounded_chunks() -> None:
    rows = (row(id=i, comment="x" * 200) for i in range(5_000))
    chunks = collect(export.csv_chunks(stream(rows), export.OWNER_COLUMNS))
    assert len(chunks) > 10
    assert max(len(c) for c in chunks) < export.CHUNK_BYTES + 2_000


# --- The consent filter, in storage, on both engines ----------------------------------------


def test_partner_export_is_exactly_its_consenting_signers(database_url: str) -> None:
    """Every combination of partner (a, b, none, unknown code) and both consent flags: the
    partner's export holds exactly its own signers who ticked its box, the owner's holds all."""

    async def check() -> None:
        storage = Storage(database_url)
        await storage.connect()
        await storage.migrate()
        await storage.import_petitions([EXAMPLE])
        pid = await storage.petition_id(EXAMPLE.slug)
        assert pid is not None
        a = await storage.add_partner(pid, "ngo-a", "NGO A")
        b = await storage.add_partner(pid, "ngo-b", "NGO B")
        combos = list(
            itertools.product(["a", "b", "none", "unknown"], [False, True], [False, True])
        )
        batch = []
        for i, (who, to_partner, to_organiser) in enumerate(combos):
            signer = validate_signer(
                {"name": f"Signer {i}", "email": f"s{i}@example.org",
                 "consent_partner": to_partner, "consent_organiser": to_organiser}
            )  # fmt: skip
            batch.append(
                NewSignature(
                    petition_id=pid,
                    partner_id={"a": a.id, "b": b.id}.get(who),
                    unknown_partner="typo" if who == "unknown" else None,
                    nonce=secrets.token_urlsafe(12),
                    nonce_expires_at=2_000_000_000,
                    signer=signer,
                    lang="en",
                    consent=Consent("en", f"consent for {who}"),
                )
            )
        writer = create_writer(storage)
        await writer.start()
        await asyncio.gather(*(writer.submit(s) for s in batch))
        await writer.close()

        for partner, who in ((a, "a"), (b, "b")):
            got = [r.email async for r in storage.export_rows(pid, partner.id)]
            expected = [
                f"s{i}@example.org" for i, (w, yes, _) in enumerate(combos) if w == who and yes
            ]
            assert sorted(got) == sorted(expected) and len(got) == 2
        everyone = [r async for r in storage.export_rows(pid)]
        assert len(everyone) == len(combos)
        by_email = {r.email: r for r in everyone}
        for i, (who, to_partner, to_organiser) in enumerate(combos):
            r = by_email[f"s{i}@example.org"]
            assert (r.consent_partner, r.consent_organiser) == (to_partner, to_organiser)
            assert r.consent_text == f"consent for {who}"
            assert r.partner_code == {"a": "ngo-a", "b": "ngo-b"}.get(who)
            assert r.unknown_partner == ("typo" if who == "unknown" else None)
        assert await storage.consenting_signers(a.id) == 2
        latest = await storage.latest_consenting(a.id, 10)
        assert sorted(s.name for s in latest) == sorted(
            f"Signer {i}" for i, (w, yes, _) in enumerate(combos) if w == "a" and yes
        )
        await storage.disconnect()

    asyncio.run(check())


# --- Many rows -----------------------------------------------------------------------------------

_COLUMNS = (
    "petition_id", "partner_id", "unknown_partner", "email_key", "email", "name", "country",
    "comment", "lang", "consent_version", "consent_organiser", "consent_partner", "created_at",
)  # fmt: skip


def _rows(pid: int, partner_id: int, n: int) -> Iterable[tuple[object, ...]]:
    """`n` made-up signers, every third through the partner and consenting to it. Inserted
    directly: going through the writer would test the writer, and take much longer."""
    start = int(time.time()) - n
    for i in range(n):
        through = i % 3 == 0
        yield (
            pid, partner_id if through else None, None, f"bulk{i}@example.org",
            f"bulk{i}@example.org", f"Bulk Signer Number {i}", "DE", "A comment, with a comma",
            "en", "bulk", 1, 1 if through else 0, start + i,
        )  # fmt: skip


def bulk_signatures(url: str, n: int) -> tuple[int, int]:
    """A petition with a partner and `n` signatures; returns (petition id, partner id)."""

    async def setup() -> tuple[int, int]:
        storage = Storage(url)
        await storage.connect()
        await storage.migrate()
        await storage.import_petitions([EXAMPLE])
        pid = await storage.petition_id(EXAMPLE.slug)
        assert pid is not None
        partner = await storage.partner(pid, "bulk") or await storage.add_partner(
            pid, "bulk", "Bulk NGO"
        )
        if storage.dialect == "postgresql":
            async with storage.database.connection() as conn:
                raw = conn.raw_connection
                await raw.execute(
                    "INSERT INTO consent_texts VALUES ('bulk', 'en', 'I agree.') "
                    "ON CONFLICT DO NOTHING"
                )
                await raw.copy_records_to_table(
                    "signatures", records=_rows(pid, partner.id, n), columns=_COLUMNS
                )
        await storage.disconnect()
        return pid, partner.id

    pid, partner_id = asyncio.run(setup())
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.execute("INSERT OR IGNORE INTO consent_texts VALUES ('bulk', 'en', 'I agree.')")
            conn.executemany(
                f"INSERT INTO signatures ({', '.join(_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                _rows(pid, partner_id, n),
            )
        conn.close()
    return pid, partner_id


def _rss() -> int:
    """This process's resident memory in bytes, now (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) * 1024  # type: ignore[index]


def test_export_memory_stays_flat_over_100k_rows(database_url: str) -> None:
    """Resident memory is sampled after every chunk of a 100,000-row export (over 12 MB of
    CSV); had the rows been gathered, it would grow by several times the file's size."""
    rows = 100_000
    pid, _ = bulk_signatures(database_url, rows)

    async def measure() -> tuple[int, int, int]:
        storage = Storage(database_url)
        await storage.connect()
        try:
            # Every code path once, on no rows (no partner has id 0), before the baseline.
            async for _ in export.csv_chunks(storage.export_rows(pid, 0), export.OWNER_COLUMNS):
                pass
            baseline = peak = _rss()
            size = lines = 0
            async for chunk in export.csv_chunks(storage.export_rows(pid), export.OWNER_COLUMNS):
                size += len(chunk)
                lines += chunk.count(b"\r\n")
                peak = max(peak, _rss())
        finally:
            await storage.disconnect()
        return size, lines, peak - baseline

    size, lines, growth = asyncio.run(measure())
    assert lines == rows + 1  # the header, then every row
    assert size > 12_000_000
    assert growth < 10_000_000, f"memory grew {growth:,} bytes for a {size:,}-byte export"


def test_a_client_hanging_up_mid_export_harms_nothing(database_url: str, tmp_path: Path) -> None:
    rows = 30_000
    bulk_signatures(database_url, rows)
    owner = access_keys.generate(access_keys.OWNER)

    async def add_key() -> None:
        storage = Storage(database_url)
        await storage.connect()
        await storage.add_access_key(owner.id, access_keys.OWNER, owner.digest, "test")
        await storage.disconnect()

    asyncio.run(add_key())
    petition = f"/admin/petitions/{EXAMPLE.slug}"
    path = f"{petition}/export.csv"
    bearer = {"Authorization": f"Bearer {owner.text}"}
    with live.LiveServer(database_url, tmp_path) as srv:
        for _ in range(3):
            with httpx.stream("GET", srv.url(path), headers=bearer, timeout=30) as response:
                assert response.status_code == 200
                first = next(response.iter_bytes())
                assert first.startswith(b"id,signed_at,")
            # Closed after one chunk: the server must let go of the query and its connection.
        assert httpx.get(srv.url("/healthz")).status_code == 200
        whole = httpx.get(srv.url(path), headers=bearer, timeout=60)
        assert whole.content.count(b"\r\n") == rows + 1
        partner = httpx.get(srv.url(f"{petition}/partners/bulk/export.csv"), headers=bearer)
        assert partner.content.count(b"\r\n") == rows // 3 + 1
    assert "Traceback" not in srv.log()


def test_the_name_to_target_choice_is_a_column_of_every_owner_export() -> None:
    """Plain CSV and JSON, and the sealed export once opened; a sealed export made before the
    column existed opens with it false."""
    assert "consent_name_to_target" in export.OWNER_COLUMNS
    assert "consent_name_to_target" not in export.PARTNER_COLUMNS
    named = row(consent_name_to_target=True)
    rows = list(csv.DictReader(io.StringIO(csv_text([named, row(id=2)]))))
    assert [r["consent_name_to_target"] for r in rows] == ["true", "false"]
    public, secret_text = sealing.new_key_pair()
    secret = sealing.parse_secret_key(secret_text)
    box = sealing.seal_signer(
        name="Anna Petrova", email="anna@example.org", comment=None, signed_at=1_764_000_000,
        owner=sealing.parse_public_key(public), partner=None,
    ).owner  # fmt: skip
    sealed = row(name="", email="", consent_name_to_target=True, sealed=box)
    lines = b"".join(collect(export.sealed_chunks(stream([sealed]), {}))).decode().splitlines()
    opened = export.open_line(lines[1], secret)
    assert opened.consent_name_to_target is True and opened.name == "Anna Petrova"
    older = json.loads(lines[1])
    del older["consent_name_to_target"]
    assert export.open_line(json.dumps(older), secret).consent_name_to_target is False
