"""XLSX exports: a real workbook (a zip of SpreadsheetML, read back here with the standard
library), the same columns and values as the CSV, every text a text (a name that looks like a
formula stays a name), written in constant memory and never left behind in a temporary file."""

from __future__ import annotations

import asyncio
import io
import re
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from server.domain import export
from server.web import spreadsheet
from tests.web.test_export import row, stream

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def cells(data: bytes) -> list[list[str]]:
    """Every row of the first sheet as text, with the cell types a formula would show."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ET.fromstring(z.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")) for si in root]
        sheet = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
    rows = []
    for r in sheet.iter(f"{{{NS['m']}}}row"):
        values: list[str] = []
        for c in r.findall("m:c", NS):
            column = _column(c.get("r", ""))
            values += [""] * (column - len(values))  # blank cells are not written
            assert c.find("m:f", NS) is None, "a formula in an export"
            kind, v = c.get("t"), c.find("m:v", NS)
            if kind == "s":
                values.append(shared[int(v.text or 0)] if v is not None else "")
            elif kind == "inlineStr":
                values.append("".join(t.text or "" for t in c.iter(f"{{{NS['m']}}}t")))
            elif kind == "b":
                values.append("true" if v is not None and v.text == "1" else "false")
            else:
                values.append(v.text if v is not None and v.text else "")
        rows.append(values)
    return rows


def _column(reference: str) -> int:
    """`D2` -> 3: the column of a cell reference."""
    n = 0
    for letter in re.match(r"[A-Z]+", reference).group(0):  # type: ignore[union-attr]
        n = n * 26 + ord(letter) - ord("A") + 1
    return n - 1


def build(rows: list[export.ExportRow], columns: tuple[str, ...] = export.OWNER_COLUMNS) -> bytes:
    async def run() -> bytes:
        return b"".join([c async for c in spreadsheet.chunks(stream(rows), columns)])

    return asyncio.run(run())


def test_a_workbook_holds_the_columns_and_values_of_the_export() -> None:
    data = build([row(), row(id=2, name="Юлия Сергеевна", consent_partner=True, comment="да")])
    found = cells(data)
    assert found[0] == list(export.OWNER_COLUMNS)
    first = dict(zip(found[0], found[1], strict=False))
    assert first["name"] == "Anna Petrova" and first["email"] == "anna@example.org"
    assert first["id"] == "1" and first["consent_organiser"] == "true"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["signed_at"])
    second = dict(zip(found[0], found[2], strict=False))
    assert second["name"] == "Юлия Сергеевна" and second["consent_partner"] == "true"


def test_text_that_looks_like_a_formula_or_a_link_stays_text() -> None:
    hostile = [
        '=HYPERLINK("http://evil.example","x")',
        "+1+1",
        "@SUM(A1)",
        "x;=1+2;y",
        "http://x.example",
    ]
    data = build([row(id=i, name=text) for i, text in enumerate(hostile)])
    names = [r[3] for r in cells(data)[1:]]  # `name` is the fourth owner column
    # Text cells, and the CSV's `'` too: saved as CSV or pasted, a cell must stay text.
    assert names == [export.neutralise(text) for text in hostile]
    assert names[3] == "x;'=1+2;y" and names[4] == "http://x.example"
    assert b"<f>" not in zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")


def test_no_temporary_file_is_left(tmp_path: Path) -> None:
    tempfile.tempdir = str(tmp_path)
    try:
        build([row()])
    finally:
        tempfile.tempdir = None
    assert list(tmp_path.iterdir()) == []
