"""The delivery pack as a PDF, made with fpdf2 and its HarfBuzz text shaping (`uharfbuzz`).

Why fpdf2: it is pure Python on top of fontTools and uharfbuzz (both wheels), so the pack needs
no system library beyond a font, where WeasyPrint needs Pango, GLib and their fonts set up
through fontconfig; and with `set_text_shaping` HarfBuzz shapes every run (Arabic joining and
ligatures, combining marks) and the Unicode bidirectional algorithm orders mixed runs, so an
Arabic name in a Russian pack reads right. fpdf2 embeds subsets of the fonts it is given.

Fonts are read from the system (`Fonts.find`): Noto Sans (Latin, Cyrillic, Greek) and Noto
Sans Arabic from Debian's `fonts-noto-core`, else DejaVu Sans (`fonts-dejavu-core`), and any
of a few other Noto scripts that are installed, as fallbacks. Nothing is shipped. A text with a
character no font has is refused before anything is drawn (`MissingGlyphs`, naming code points,
never the text): fpdf2 itself would leave it out without a word, and a name silently cut short
on a delivered list is worse than a clear error. The only input this module reads is the font
files it is given.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import FontFace

from server.domain import delivery
from server.domain.delivery import Pack
from server.domain.errors import PetitionWidgetError

NOTO = Path("/usr/share/fonts/truetype/noto")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_REGULAR = (NOTO / "NotoSans-Regular.ttf", DEJAVU / "DejaVuSans.ttf")
_BOLD = (NOTO / "NotoSans-Bold.ttf", DEJAVU / "DejaVuSans-Bold.ttf")
# Scripts beyond Latin, Cyrillic and Greek, each taken when installed (fonts-noto-core has them).
_FALLBACKS = (
    NOTO / "NotoSansArabic-Regular.ttf",
    NOTO / "NotoNaskhArabic-Regular.ttf",
    NOTO / "NotoSansHebrew-Regular.ttf",
    NOTO / "NotoSansArmenian-Regular.ttf",
    NOTO / "NotoSansGeorgian-Regular.ttf",
    NOTO / "NotoSansDevanagari-Regular.ttf",
    NOTO / "NotoSansThai-Regular.ttf",
    DEJAVU / "DejaVuSans.ttf",
)
_IGNORED = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})  # spaces, joiners, direction marks


class MissingFonts(PetitionWidgetError):
    """No font to draw the pack with: the message says which package to install."""


class MissingGlyphs(PetitionWidgetError):
    """A text holds characters no installed font can draw (named by code point only)."""


@dataclasses.dataclass(frozen=True)
class Fonts:
    regular: Path
    bold: Path
    fallbacks: tuple[Path, ...] = ()

    @classmethod
    def find(
        cls,
        regular: Sequence[Path] = _REGULAR,
        bold: Sequence[Path] = _BOLD,
        fallbacks: Sequence[Path] = _FALLBACKS,
    ) -> Fonts:
        """The installed fonts, or `MissingFonts` saying what to install."""
        found = [next((p for p in paths if p.is_file()), None) for paths in (regular, bold)]
        if found[0] is None or found[1] is None:
            wanted = ", ".join(str(p) for p in (*regular, *bold))
            raise MissingFonts(
                "the delivery pack needs a font: install Debian's fonts-noto-core (or "
                f"fonts-dejavu-core); looked for {wanted}"
            )
        extra = tuple(p for p in fallbacks if p.is_file() and p not in found)
        return cls(found[0], found[1], extra)

    def missing(self, texts: Iterable[str]) -> list[str]:
        """The characters of `texts` that no font has, as `U+0000 NAME`, sorted."""
        covered = _cmap(self.regular) | frozenset().union(*(_cmap(p) for p in self.fallbacks))
        absent = {
            c
            for text in texts
            for c in text
            if ord(c) not in covered and unicodedata.category(c) not in _IGNORED
        }
        return [f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in sorted(absent)]


@functools.cache
def _cmap(path: Path) -> frozenset[int]:
    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def texts_of(p: Pack) -> list[str]:
    """Every text the PDF draws (for the glyph check): the petition's, and the names."""
    t = p.catalog
    words = [p.title, p.target, *p.statement, delivery.COMMAND]
    words += [delivery.country_name(code, t) for code, _ in p.by_country]
    words += [name for name, _ in p.by_partner or ()]
    words += [s.name for s in p.names or ()]
    words += [delivery.country_name(s.country, t) for s in p.names or ()]
    words += [str(v) for v in t.messages.values() if isinstance(v, str)]
    words += [t.number(n) for n in range(10)]
    return words


def render(p: Pack, fonts: Fonts) -> bytes:
    """The pack as PDF bytes. Raises `MissingGlyphs` before drawing anything that no font has."""
    missing = fonts.missing(texts_of(p))
    if missing:
        shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        raise MissingGlyphs(
            f"no installed font can draw {len(missing)} character(s) of this pack ({shown}): "
            "install a Noto font for that script (Debian: fonts-noto-core, fonts-noto-cjk)"
        )
    return _Document(p, fonts).build()


class _Document:
    def __init__(self, p: Pack, fonts: Fonts) -> None:
        self.p, self.t = p, p.catalog
        self.rtl = self.t.dir == "rtl"
        self.align = "R" if self.rtl else "L"
        pdf = FPDF(format="A4")
        pdf.set_margins(18, 18, 18)
        pdf.set_auto_page_break(True, margin=18)
        pdf.add_font("body", "", str(fonts.regular))
        pdf.add_font("body", "B", str(fonts.bold))
        names = []
        for i, path in enumerate(fonts.fallbacks):
            pdf.add_font(f"fallback{i}", "", str(path))
            names.append(f"fallback{i}")
        pdf.set_fallback_fonts(names, exact_match=False)
        # HarfBuzz shaping; the direction of each paragraph from its text (Unicode bidi).
        pdf.set_text_shaping(True)
        pdf.set_title(p.title)
        pdf.set_lang(p.lang)
        pdf.set_creator("petition-widget")
        pdf.set_creation_date(_utc(p.generated_at))
        self.pdf = pdf

    def build(self) -> bytes:
        p, t, pdf = self.p, self.t, self.pdf
        pdf.add_page()
        self.text(p.title, size=17, bold=True, gap=2)
        self.text(t("addressed_to", target=p.target), size=12, bold=True, gap=4)
        self.heading(t("petition_text"))
        for paragraph in p.statement:
            self.text(paragraph, gap=2)
        pdf.ln(3)
        self.text(t("delivery_opened", date=delivery.day(p.opened_at, t)))
        if p.closed_at is not None:
            self.text(t("delivery_closed", date=delivery.day(p.closed_at, t)))
        self.text(t("delivery_generated", date=delivery.day(p.generated_at, t)), gap=3)
        self.text(t("delivery_total", count=p.total), size=13, bold=True)
        self.text(t("goal", goal=p.goal), gap=2)

        self.heading(t("delivery_by_country"))
        rows = [(delivery.country_name(code, t), delivery.country_count(n, t))
                for code, n in p.by_country]  # fmt: skip
        self.table((t("country_label"), t("delivery_signatures")), rows)
        note = delivery.hidden_note(p, t)
        if note is not None:
            self.text(note, size=9)
        if p.by_partner is not None:
            self.heading(t("delivery_by_partner"))
            self.table(
                (t("delivery_by_partner"), t("delivery_signatures")),
                [(name, t.number(n)) for name, n in p.by_partner],
            )
        self.heading(t("delivery_milestones"))
        for m in p.milestones:
            self.text(delivery.milestone_line(m, t))

        self.heading(t("delivery_names"))
        if p.names is None:
            self.text(t("delivery_names_left_out", command=delivery.COMMAND))
        else:
            named = [(s.name, delivery.country_name(s.country, t)) for s in p.names]
            self.table((t("delivery_name"), t("country_label")), named, counts=False)
            self.text(t("delivery_not_named", count=p.not_named))
        return bytes(pdf.output())

    def text(self, value: str, *, size: float = 10.5, bold: bool = False, gap: float = 0) -> None:
        self.pdf.set_font("body", "B" if bold else "", size)
        self.pdf.multi_cell(0, size * 0.55, value, align=self.align, new_x="LMARGIN", new_y="NEXT")
        if gap:
            self.pdf.ln(gap)

    def heading(self, value: str) -> None:
        self.pdf.ln(4)
        self.text(value, size=13, bold=True, gap=1.5)

    def table(
        self, header: tuple[str, str], rows: Sequence[tuple[str, str]], *, counts: bool = True
    ) -> None:
        """Two columns: a name and a count (`counts`), or two texts."""
        if not rows:
            return
        pdf = self.pdf
        pdf.set_font("body", "", 10)
        widths = (3, 1)
        order = slice(None, None, -1) if self.rtl else slice(None)
        with pdf.table(
            col_widths=widths[order],
            text_align=(
                ("RIGHT", "RIGHT") if self.rtl else ("LEFT", "RIGHT" if counts else "LEFT")
            ),
            headings_style=FontFace(emphasis="BOLD"),
            line_height=5.5,
            first_row_as_headings=True,
        ) as table:
            for row in [header, *rows]:
                line = table.row()
                for cell in row[order]:
                    line.cell(cell)
        pdf.ln(2)


def _utc(timestamp: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
