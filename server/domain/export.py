"""Exports of signatures as CSV or JSON, produced row by row from an async stream of rows.

Pure: these functions only shape rows that `Storage.export_rows` reads (which is also where
the consent filter of a partner export lives). Output is gathered into chunks of about
`CHUNK_BYTES`, so memory stays constant however many rows there are, and the server sends a
few large writes instead of a million tiny ones.

CSV is UTF-8 with a header row and CRLF line ends (RFC 4180); `bom=True` adds the byte order
mark that Excel needs to read UTF-8 (Cyrillic names) correctly. In CSV and XLSX alike, a `'`
goes before `=`, `+`, `-`, `@`, a tab or a carriage return wherever one starts a text cell or
follows a `;`, `,`, `|` or tab inside it (`neutralise`), so a spreadsheet shows it as text
instead of running it as a formula (CSV injection). Not only at the start: Excel set to `;` as
its list separator (Russian, German, French settings, the very readers of "CSV for Excel")
splits the unquoted cell `x;=1+2;y` into three and runs the middle one, and a pasted cell
splits on tabs and `|` in some tools. JSON is one array of objects, one per line, with the
values as they are: JSON is read by programs, not spreadsheets.

Owners get every signer with the consent flags and the exact consent text each one saw, so
they can honour each choice. Partners get only their own signers who agreed to hear from
them, and only what contacting them needs: no comment, no organiser's consent flag.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any

from server.domain import sealing
from server.domain.errors import PetitionWidgetError


@dataclasses.dataclass(frozen=True)
class ExportRow:
    id: int
    created_at: int  # when it began to count: confirmed, or signed when that is the same
    name: str
    email: str
    country: str | None
    comment: str | None
    lang: str
    partner_code: str | None
    partner_name: str | None
    unknown_partner: str | None
    consent_organiser: bool
    consent_partner: bool
    consent_version: str
    consent_text: str | None
    signed_at: int | None = None  # when it was submitted, when it was confirmed later
    # Sealed: the box holding name, email, comment and the exact time (`sealing`); the clear
    # fields then hold nothing of them, and the times only their hour.
    sealed: str | None = None
    # Ticked "Show my name on the list delivered to {target}" (the delivery pack lists them).
    consent_name_to_target: bool = False


CHUNK_BYTES = 64 * 1024
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Where a formula may start inside a cell: where the cell starts, or after a character that
#: some spreadsheet reads as a separator. Zero-width, so `\t\t=` gets a `'` before each.
_FORMULA_AT = re.compile(r"(?:^|(?<=[;,|\t]))(?=[=+\-@\t\r])")
BOM = "\ufeff"

OWNER_COLUMNS = (
    "id",
    "signed_at",
    "confirmed_at",
    "name",
    "email",
    "country",
    "comment",
    "lang",
    "partner_code",
    "partner_name",
    "unknown_partner_code",
    "consent_organiser",
    "consent_partner",
    "consent_name_to_target",
    "consent_version",
    "consent_text",
)
PARTNER_COLUMNS = (
    "signed_at",
    "confirmed_at",
    "name",
    "email",
    "country",
    "lang",
    "consent_version",
    "consent_text",
)


def iso(timestamp: int) -> str:
    """A UTC time as `2026-11-24T21:28:14Z`."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def record(row: ExportRow, columns: Sequence[str]) -> dict[str, Any]:
    """One signature as {column: value}: strings, booleans, None, and the id as a number."""
    values: dict[str, Any] = {
        "id": row.id,
        "signed_at": iso(row.signed_at or row.created_at),
        "confirmed_at": iso(row.created_at),
        "name": row.name,
        "email": row.email,
        "country": row.country,
        "comment": row.comment,
        "lang": row.lang,
        "partner_code": row.partner_code,
        "partner_name": row.partner_name,
        "unknown_partner_code": row.unknown_partner,
        "consent_organiser": row.consent_organiser,
        "consent_partner": row.consent_partner,
        "consent_name_to_target": row.consent_name_to_target,
        "consent_version": row.consent_version,
        "consent_text": row.consent_text,
    }
    return {column: values[column] for column in columns}


def neutralise(text: str) -> str:
    """A cell a spreadsheet will not run as a formula: `'` before every dangerous character that
    starts the cell or follows a separator (`_FORMULA_AT`)."""
    return _FORMULA_AT.sub("'", text)


def csv_cell(value: Any) -> str:
    if isinstance(value, str):
        return neutralise(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return neutralise(str(value))


class _Lines:
    """Where the csv module writes; collects text until it is taken."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def take(self) -> bytes:
        data = "".join(self.parts).encode()
        self.parts, self.size = [], 0
        return data


async def csv_chunks(
    rows: AsyncIterable[ExportRow], columns: Sequence[str], *, bom: bool = False
) -> AsyncIterator[bytes]:
    """CSV bytes: the header first, then every row, in chunks of about `CHUNK_BYTES`."""
    out = _Lines()
    writer = csv.writer(out, lineterminator="\r\n")
    if bom:
        out.write(BOM)
    writer.writerow(columns)
    async for row in rows:
        writer.writerow([csv_cell(v) for v in record(row, columns).values()])
        if out.size >= CHUNK_BYTES:
            yield out.take()
    yield out.take()


async def json_chunks(
    rows: AsyncIterable[ExportRow], columns: Sequence[str]
) -> AsyncIterator[bytes]:
    """A JSON array of objects, one per line, in chunks of about `CHUNK_BYTES`."""
    out = _Lines()
    out.write("[")
    separator = "\n"
    async for row in rows:
        out.write(separator + json.dumps(record(row, columns), ensure_ascii=False))
        separator = ",\n"
        if out.size >= CHUNK_BYTES:
            yield out.take()
    out.write("\n]\n")
    yield out.take()


FORMATS: dict[str, tuple[str, Callable[..., AsyncIterator[bytes]]]] = {
    "csv": ("text/csv; charset=utf-8", csv_chunks),
    "json": ("application/json", json_chunks),
}


# --- Sealed exports ----------------------------------------------------------------------------
# A sealed export is JSON lines: a header, then one line per signature with the clear fields of
# its `ExportRow` and its `box`. It is made on the server, which cannot open it, and opened
# offline (`petition-widget export-open`) with the secret key, giving the same columns as the
# plain exports. docs/owners.md documents the format.

SEALED_FORMAT = "petition-widget-sealed-export"
SEALED_VERSION = 1


async def sealed_chunks(
    rows: AsyncIterable[ExportRow], header: dict[str, Any]
) -> AsyncIterator[bytes]:
    """The sealed export: `header` (with the format's name and version added), then a line per
    row. A row stored before sealing was on has no box, and its clear fields as stored."""
    out = _Lines()
    head = {"format": SEALED_FORMAT, "version": SEALED_VERSION, **header}
    out.write(json.dumps(head, ensure_ascii=False) + "\n")
    async for row in rows:
        line = dataclasses.asdict(row)
        box = line.pop("sealed")
        if box is not None:
            line.update(name=None, email=None, comment=None, box=box)
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        if out.size >= CHUNK_BYTES:
            yield out.take()
    yield out.take()


class BadExport(PetitionWidgetError):
    """A file that is not a sealed export of ours, or a line in it that is broken."""


def sealed_header(first_line: str) -> dict[str, Any]:
    try:
        header = json.loads(first_line)
    except ValueError:
        raise BadExport("not a sealed export: its first line is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != SEALED_FORMAT:
        raise BadExport("not a sealed export of petition-widget")
    if header.get("version") != SEALED_VERSION:
        raise BadExport(f"a sealed export of version {header.get('version')}, not ours")
    return header


def opened_row(line: dict[str, Any], opened: dict[str, Any] | None) -> ExportRow:
    """A sealed export's line as the row a plain export has, with what its box held."""
    fields: dict[str, Any] = {f.name: line.get(f.name) for f in dataclasses.fields(ExportRow)}
    fields["sealed"] = None
    # A sealed export made before the column existed has no such field: nobody ticked it.
    fields["consent_name_to_target"] = bool(fields["consent_name_to_target"])
    if opened is not None:
        fields.update(
            name=opened.get("name") or "",
            email=opened.get("email") or "",
            comment=opened.get("comment"),
            signed_at=opened.get("signed_at") or fields["signed_at"],
        )
    return ExportRow(**fields)


def open_row(row: ExportRow, secret: Any) -> ExportRow:
    """A stored row with its box opened by `secret` (a `nacl.public.PrivateKey`); a row stored
    before sealing was on comes back as it is. Raises `sealing.BadKey` for a box the key does
    not open."""
    if row.sealed is None:
        return row
    return opened_row(dataclasses.asdict(row), sealing.open_box(row.sealed, secret))


def open_line(text: str, secret: Any) -> ExportRow:
    """One line of a sealed export, opened."""
    try:
        line = json.loads(text)
    except ValueError:
        raise BadExport("a line of the sealed export is not JSON") from None
    if not isinstance(line, dict):
        raise BadExport("a line of the sealed export is not an object")
    box = line.get("box")
    return opened_row(line, sealing.open_box(box, secret) if isinstance(box, str) else None)
