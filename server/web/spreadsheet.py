"""Exports as Excel workbooks (`.xlsx`), through XlsxWriter.

Owners asked for a file Excel opens without the import dialog CSV needs (and without the byte
order mark that CSV needs for Cyrillic names). XlsxWriter writes the format itself, with no
Excel and no other dependency, in constant memory (each row goes to a temporary file as it is
written), so a million signers do not fill the server's memory.

Every text is written as a text cell: XlsxWriter's defaults would turn a cell starting with `=`
into a formula and a URL into a hyperlink, and a signer's name is neither. It also gets the
CSV's `'` before a formula (`export.neutralise`): a text cell stays text only until someone
saves the sheet as CSV or pastes it elsewhere, and both formats then hold the same values.
Times are ISO 8601 text in UTC, as in the other formats.

This writes files, so it is not in the pure domain; the rows and columns are `domain.export`'s.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import IO, Any

import xlsxwriter

from server.domain.export import CHUNK_BYTES, ExportRow, neutralise, record

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BATCH = 1_000  # rows written per hop to the writing thread


class Workbook:
    """One sheet of export rows, with a bold header and its columns frozen at the top."""

    def __init__(self, target: str | IO[bytes], columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.book = xlsxwriter.Workbook(
            target,
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
            },
        )
        self.sheet = self.book.add_worksheet("signatures")
        header = self.book.add_format({"bold": True})
        for col, name in enumerate(self.columns):
            self.sheet.write_string(0, col, name, header)
        self.sheet.freeze_panes(1, 0)
        self.row = 1

    def add(self, rows: Iterable[ExportRow]) -> None:
        for row in rows:
            for col, value in enumerate(record(row, self.columns).values()):
                self._cell(col, value)
            self.row += 1

    def _cell(self, col: int, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            self.sheet.write_boolean(self.row, col, value)
        elif isinstance(value, int):
            self.sheet.write_number(self.row, col, value)
        else:
            self.sheet.write_string(self.row, col, neutralise(str(value)))

    def close(self) -> None:
        self.book.close()


async def write(rows: AsyncIterable[ExportRow], columns: Sequence[str], target: str) -> None:
    """Write `rows` to a workbook at `target`, the writing done on a thread in batches, so the
    event loop stays free while a large export is built."""
    book = await asyncio.to_thread(Workbook, target, columns)
    try:
        batch: list[ExportRow] = []
        async for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                await asyncio.to_thread(book.add, batch)
                batch = []
        await asyncio.to_thread(book.add, batch)
    finally:
        await asyncio.to_thread(book.close)


async def chunks(rows: AsyncIterable[ExportRow], columns: Sequence[str]) -> AsyncIterator[bytes]:
    """The workbook's bytes, for a streamed answer: built in a temporary file (an xlsx is a zip,
    finished only at its end), then read out in chunks, and the file removed."""
    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    try:
        await write(rows, columns, path)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                yield chunk
    finally:
        os.unlink(path)
