"""The height a snippet reserves for its widget before the widget is there (pure).

An `async` loader may run after the host page's first paint, so only the host's own markup can
keep space for the frame; otherwise everything below it jumps when it arrives (Google's
"cumulative layout shift"). The snippet's placeholder is sized here, from heights measured in
Chromium (`scripts/measure_heights.py`, rerun it when the widget's look or a catalog changes):
the form of a minimal petition in each language and layout, at 375 and 800 px wide, plus what
each part of a petition adds (its title's and summary's lines, the country and comment fields,
the organiser's box, the name-to-target box and its target's lines, the legal notice), and the
box a registered partner's snippet adds ("Keep me informed by {partner}"), laid out from the
partner's name. The
placeholder's CSS interpolates between the two widths with container query units, so one
snippet fits a phone and a desktop column.
"""

from __future__ import annotations

import dataclasses
import math

from server.domain import i18n
from server.domain.petitions import Petition

NARROW, WIDE = 375, 800  # the two widths heights are measured at, in CSS px

# Measured: the minimal petition (one-letter texts, country optional, comment hidden, no
# organiser and no legal notice), its form, (375 px, 800 px), per layout and language.
_BASE = {
    "full": {
        "ar": (837, 797), "de": (942, 817), "en": (743, 723), "es": (898, 797),
        "fr": (878, 797), "kk": (939, 817), "pt": (898, 797), "ru": (918, 797),
        "tr": (878, 797), "uk": (918, 797),
    },
    "compact": {
        "ar": (810, 759), "de": (892, 780), "en": (717, 686), "es": (872, 759),
        "fr": (851, 759), "kk": (912, 780), "pt": (872, 759), "ru": (892, 759),
        "tr": (831, 759), "uk": (872, 759),
    },
}  # fmt: skip
# What the organiser's "keep me informed" box adds (with its English original while the
# translation is unreviewed), per language, (375, 800).
_ORGANISER = {
    "ar": (83, 59), "de": (84, 39), "en": (43, 40), "es": (83, 59), "fr": (107, 59),
    "kk": (83, 60), "pt": (83, 59), "ru": (63, 59), "tr": (87, 59), "uk": (63, 59),
}  # fmt: skip
# What the box "Show my name on the list delivered to {target}" adds with a one-letter target
# (`[form] name_to_target = "optional"`), per language, (375, 800); a longer target adds the
# lines it wraps to past those of that measurement (`_target_lines`): its label took 2 lines
# at 375 px and 1 at 800 in every language but English (1 and 1), and the English original
# under an unreviewed label 1 line.
_NAME_TO_TARGET = {
    "ar": (83, 59), "de": (84, 60), "en": (39, 40), "es": (83, 59), "fr": (83, 59),
    "kk": (83, 60), "pt": (83, 59), "ru": (84, 59), "tr": (83, 59), "uk": (84, 59),
}  # fmt: skip
_MEASURED_LABEL_LINES = {"en": (1, 1)}  # the others: (2, 1)
_CHECKBOX = 28  # a box's input and gap, beside its label
# A consent box's own paragraph past its label's lines: the paragraph's margin (.75rem) and the
# label's (.2rem), as widget.css sets them (the organiser's and the target's measured boxes
# are this plus their lines: 15.2 + 24 in English, 15.2 + 2 x 24 + 20.4 in Russian at 375 px).
_BOX = 15.2
_ORIGINAL = (13.6, 20.4)  # the English original under an unreviewed label: font, line height
_COUNTRY = 86  # the country field, when it is not hidden
_COMMENT = 132  # the comment field, when it is shown
# Layout of the text blocks: (content width, font size, line height) at 375 and at 800 px.
_TITLE = {"full": ((343, 21.6, 27), (752, 25.6, 32)), "compact": ((351, 18.4, 23), (768, 20, 25))}
_SUMMARY = {"full": ((343, 16, 24), (752, 16, 24)), "compact": ((351, 16, 24), (768, 16, 24))}
_LEGAL = {
    "full": ((343, 13.6, 20.4), (752, 13.6, 20.4)),
    "compact": ((351, 13.6, 20.4), (768, 13.6, 20.4)),
}
# Average advance of a character, in em, in the fonts the tests run with: Cyrillic letters are
# wider than Latin ones (fitted to the example petition's English and Russian texts).
_EM_PER_CHARACTER = 0.52
_EM_PER_CYRILLIC = 0.60
_COMPACT_SUMMARY_LINES = 3


@dataclasses.dataclass(frozen=True)
class Space:
    """The reserved height at 375 and at 800 px of container width."""

    narrow: int
    wide: int

    @classmethod
    def estimate(
        cls, petition: Petition, lang: str, layout: str = "full", partner: str = ""
    ) -> Space:
        """The form's height for this petition, language and layout ("full" or "compact"), on
        the page of the partner named `partner` (its registered name; "" for none): the widget
        adds that partner's consent box whenever the snippet's code is a registered one."""
        layout = "compact" if layout == "compact" else "full"
        texts = petition.in_language(lang)
        base = _BASE[layout].get(lang, _BASE[layout]["en"])
        heights = []
        for i in (0, 1):
            height = base[i] + _lines(texts.title, _TITLE[layout][i])
            summary = _lines(texts.summary, _SUMMARY[layout][i], counted=True)
            if layout == "compact":
                summary = min(summary, _COMPACT_SUMMARY_LINES)
            height += (summary - 1) * _SUMMARY[layout][i][2]
            if texts.legal_notice:
                height += _lines(texts.legal_notice, _LEGAL[layout][i]) + _LEGAL[layout][i][2]
            if texts.organiser:
                height += _ORGANISER.get(lang, _ORGANISER["en"])[i]
            if petition.name_to_target == "optional":
                height += _NAME_TO_TARGET.get(lang, _NAME_TO_TARGET["en"])[i]
                height += _target_lines(texts.target, lang, i, _SUMMARY[layout][i])
            if partner:
                height += _partner_box(partner, lang, _SUMMARY[layout][i])
            if petition.country == "hidden":
                height -= _COUNTRY
            if petition.comment != "hidden":
                height += _COMMENT
            heights.append(round(height))
        return cls(heights[0], heights[1])

    @classmethod
    def tallest(
        cls, petition: Petition, langs: list[str], layout: str = "full", partner: str = ""
    ) -> Space:
        """For a snippet without `data-lang`: the tallest of the languages it may show."""
        langs = langs or [petition.lang]
        spaces = [cls.estimate(petition, lang, layout, partner) for lang in langs]
        return cls(max(s.narrow for s in spaces), max(s.wide for s in spaces))

    def css(self) -> str:
        """Declarations for the placeholder: a fixed height for browsers without container
        query units, then the height interpolated between the two widths (and extrapolated a
        little below 375 px, down to 280)."""
        slope = (self.narrow - self.wide) / (WIDE - NARROW)
        top = math.ceil(self.narrow + slope * (NARROW - 280))
        return (
            f"min-height:{self.narrow}px;"
            f"min-height:clamp({self.wide}px,calc({self.narrow}px - (100cqw - {NARROW}px) * "
            f"{slope:.4f}),{top}px)"
        )


def _target_lines(target: str, lang: str, i: int, summary: tuple[float, float, float]) -> float:
    """The extra height of the name-to-target label (and of its English original while the
    translation is unreviewed) with this target, over the one-letter target measured."""
    width, font, line = summary
    t = i18n.catalog(lang)
    label = _lines(t("consent_name_to_target", target=target), (width - _CHECKBOX, font, line),
                   counted=True)  # fmt: skip
    extra = max(0, label - _MEASURED_LABEL_LINES.get(lang, (2, 1))[i]) * line
    if not t.reviewed("consent_name_to_target"):
        english = i18n.catalog(i18n.DEFAULT_LANGUAGE)("consent_name_to_target", target=target)
        extra += _lines(english, (width - _CHECKBOX, *_ORIGINAL))
    return extra


def _partner_box(name: str, lang: str, summary: tuple[float, float, float]) -> float:
    """The height of the partner's box: its label's lines with this name, and the English
    original's under it wherever the form shows the originals (any consent text of the
    language unreviewed: widget.html puts them under every box then)."""
    width, font, line = summary
    t = i18n.catalog(lang)
    box = (width - _CHECKBOX, font, line)
    height = _BOX + _lines(t("consent_partner", partner=name), box, counted=True) * line
    if t.unreviewed_consent:
        english = i18n.catalog(i18n.DEFAULT_LANGUAGE)("consent_partner", partner=name)
        height += _lines(english, (width - _CHECKBOX, *_ORIGINAL), counted=True) * _ORIGINAL[1]
    return height


def _lines(text: str, box: tuple[float, float, float], counted: bool = False) -> int | float:
    """The extra height of `text` past its first line (or, `counted`, its number of lines)."""
    width, font, line = box
    cyrillic = sum(1 for c in text if "\u0400" <= c <= "\u04ff")
    ems = cyrillic * _EM_PER_CYRILLIC + (len(text) - cyrillic) * _EM_PER_CHARACTER
    lines = max(1, math.ceil(ems * font / width))
    return lines if counted else (lines - 1) * line
