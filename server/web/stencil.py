"""A page rendered and gzipped once, with holes for the few values that differ per request.

The widget document is the same for every visitor of a petition (same count, language,
partner, look) except for its fresh form token and the frame's id. Rendering it costs about
1.5 ms and gzipping it about as much again; a stencil does both once and then, per request,
only writes the values into the holes: in plain text by joining, and in gzip by splicing them
in as uncompressed ("stored") deflate blocks between the parts compressed ahead of time, which
is valid deflate (RFC 1951: each part ends on a full flush, so it refers to nothing before it).
The CRC of the whole is computed per request; that is the only pass over all the bytes.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Mapping

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0
_LEVEL = 6


def _deflate(part: bytes, *, last: bool) -> bytes:
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)  # raw deflate, no zlib header
    return compressor.compress(part) + compressor.flush(
        zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH
    )


def _stored(value: bytes) -> bytes:
    """`value` as one uncompressed, non-final deflate block (byte-aligned after a full flush)."""
    return b"\x00" + struct.pack("<HH", len(value), len(value) ^ 0xFFFF) + value


class Stencil:
    def __init__(self, text: str, holes: Mapping[str, str]) -> None:
        """`text` with each placeholder of `holes` (name: placeholder) marking a hole."""
        by_placeholder = {placeholder: name for name, placeholder in holes.items()}
        pieces = re.split("(" + "|".join(map(re.escape, by_placeholder)) + ")", text)
        self.parts = [p.encode() for p in pieces[0::2]]
        self.names = [by_placeholder[p] for p in pieces[1::2]]
        last = len(self.parts) - 1
        self._deflated = [_deflate(p, last=i == last) for i, p in enumerate(self.parts)]

    def _values(self, values: Mapping[str, str]) -> list[bytes]:
        filled = [values[name].encode() for name in self.names]
        if any(len(v) > 0xFFFF for v in filled):
            raise ValueError("a hole holds at most 65,535 bytes")
        return filled

    def plain(self, values: Mapping[str, str]) -> bytes:
        filled = self._values(values)
        out = [self.parts[0]]
        for value, part in zip(filled, self.parts[1:], strict=True):
            out += (value, part)
        return b"".join(out)

    def gzip(self, values: Mapping[str, str]) -> bytes:
        filled = self._values(values)
        crc = zlib.crc32(self.parts[0])
        size = len(self.parts[0])
        out = [_GZIP_HEADER, self._deflated[0]]
        for value, part, deflated in zip(filled, self.parts[1:], self._deflated[1:], strict=True):
            crc = zlib.crc32(part, zlib.crc32(value, crc))
            size += len(value) + len(part)
            out += (_stored(value), deflated)
        out.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
        return b"".join(out)
