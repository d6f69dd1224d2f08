"""A PDF's text as a reader gets it back: `pdftotext` (poppler-utils), NFKC, spaces collapsed,
so tests compare what a pack says rather than how fpdf2 laid it out."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path


def text_of(pdf: Path | bytes) -> str:
    """The PDF's text as pdftotext reads it, NFKC, bidi controls dropped, spaces collapsed."""
    source, given = ("-", pdf) if isinstance(pdf, bytes) else (str(pdf), None)
    raw = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", source, "-"],
        input=given, capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    text = unicodedata.normalize("NFKC", raw)
    text = re.sub("[\u200e\u200f\u202a-\u202e\u2066-\u2069]", "", text)
    return re.sub(r"\s+", " ", text)


def nfkc(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text))
