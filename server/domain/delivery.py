"""The delivery pack: what is handed to the petition's target, as values and as CSV. Pure.

A `Pack` holds the petition's title, target and statement in one language, its dates (opened,
closed, made), the total (exact), the totals by country, by partner only when asked
(`--with-partners`: a pack handed to a hostile government should not list the NGOs that
collected it), the milestones (25, 50, 75 and 100 % of the goal shown: with
`auto_goal`, the step above the count, `shown_goal`) with the hour each was reached, and the
names with their country of the signers who ticked `consent_name_to_target`, and only theirs:
everyone else is counted, not named. No email is ever part of a pack: `Named` has no field for
one.

The totals by country follow the rule of every breakdown someone other than the owner sees
(`breakdowns`): a country, or the cell of signers who gave none, with fewer than
`breakdowns.MINIMUM` (10) signatures has no number (`None`), and the hidden cells come after the
open ones in code order. The pack is made by the owner but read by the petition's target, often
the very government the signers fear, where three signers from one country could be three
people it can find. The CSV writes such a cell as `<10` (language-neutral like its other
numbers; `<` is no formula start), the PDF as the words "fewer than 10" in the pack's language.

Milestones are worked out from the signatures per hour (`milestones`): sealed rows keep only
the hour of a signature in clear, so an hour is as exact as the data allows everywhere.

The CSV (`csv_text`) holds the same lists in blocks separated by an empty line, each with its
own header row; every text cell is made formula-safe by `export.neutralise` (a `'` before
`=`, `+`, `-`, `@`, a tab or a carriage return at the start of a cell or after `;`, `,`, `|` or
a tab: some spreadsheets split an imported cell at those separators), the rule of every
export. The PDF is `delivery_pdf`'s.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import math
from collections.abc import Iterable, Mapping, Sequence

import babel.numbers

from server.domain import breakdowns, export, goals, i18n, richtext
from server.domain.petitions import Entry

MILESTONES = (25, 50, 75, 100)  # percent of the goal
COMMAND = "petition-widget delivery"


@dataclasses.dataclass(frozen=True)
class Named:
    """A signer on the list: the name as typed, and the country if given. Nothing else."""

    name: str
    country: str | None


@dataclasses.dataclass(frozen=True)
class Milestone:
    percent: int
    signatures: int  # the count that reaches it
    reached_at: int | None  # the start of the hour (UTC) it was reached in; None: not yet


@dataclasses.dataclass(frozen=True)
class Pack:
    slug: str
    lang: str
    title: str
    target: str
    statement: tuple[str, ...]  # plain paragraphs
    goal: int
    total: int
    opened_at: int
    closed_at: int | None
    generated_at: int
    # Open cells largest first, then the hidden ones (None: fewer than `breakdowns.MINIMUM`)
    # in code order, "not given" last.
    by_country: tuple[tuple[str | None, int | None], ...]
    by_partner: tuple[tuple[str, int], ...] | None  # (name, count); None: not asked for
    milestones: tuple[Milestone, ...]
    names: tuple[Named, ...] | None  # None: made without names (the dashboard's copy)
    not_named: int  # counted, and not on the list

    @property
    def catalog(self) -> i18n.Catalog:
        return i18n.catalog(self.lang)


def milestones(hours: Mapping[int, int], goal: int) -> tuple[Milestone, ...]:
    """The hour in which the running count first reached each milestone, from the signatures
    per hour ({hour start: count}). A count that later fell (withdrawals) keeps the hour it was
    first reached."""
    targets = [(p, max(1, math.ceil(goal * p / 100))) for p in MILESTONES]
    reached: dict[int, int] = {}
    running = 0
    for hour in sorted(hours):
        running += hours[hour]
        for percent, needed in targets:
            if percent not in reached and running >= needed:
                reached[percent] = hour
    return tuple(Milestone(p, n, reached.get(p)) for p, n in targets)


def shown_goal(entry: Entry, total: int) -> int:
    """The goal the widget, badge and API show for `total` signatures: with `auto_goal`, the
    step above the count once it reached the goal, never below a step shown before (the one
    stored, `Entry.shown_goal`). A pack that named another goal than the public one would
    hand the target a figure the campaign never showed."""
    if not entry.petition.auto_goal:
        return entry.goal
    return goals.shown_goal(total, entry.goal, entry.shown_goal)


def pack(
    entry: Entry,
    *,
    lang: str,
    total: int,
    opened_at: int,
    closed_at: int | None,
    generated_at: int,
    by_country: Mapping[str | None, int],
    hours: Mapping[int, int],
    names: Sequence[Named] | None,
    by_partner: Iterable[tuple[str, int]] | None = None,
) -> Pack:
    """The pack of a petition in `lang` (a language of the petition, else its own). `names`:
    the signers who chose to be named (None: a pack without names); `total` counts everyone."""
    lang = lang if lang in entry.petition.languages else entry.petition.lang
    texts = entry.petition.in_language(lang)
    # Not exact: the pack leaves the owner's hands (see the module's docstring).
    cells = breakdowns.cells(by_country, key="country", exact=False)
    goal = shown_goal(entry, total)
    return Pack(
        slug=entry.slug,
        lang=lang,
        title=texts.title,
        target=texts.target,
        statement=tuple(richtext.plain(texts.statement)),
        goal=goal,
        total=total,
        opened_at=opened_at,
        closed_at=closed_at,
        generated_at=generated_at,
        by_country=tuple((c["country"], c["signatures"]) for c in cells),
        by_partner=None if by_partner is None else tuple(by_partner),
        milestones=milestones(hours, goal),
        names=None if names is None else tuple(names),
        not_named=max(0, total - len(names or ())),
    )


# --- Words, shared by the PDF and the CSV --------------------------------------------------------


def day(timestamp: int, t: i18n.Catalog) -> str:
    return t.date(datetime.datetime.fromtimestamp(timestamp, datetime.UTC).date())


def hour(timestamp: int, t: i18n.Catalog) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return t.skeleton(moment, "yMMMdHm") + " UTC"


def country_name(code: str | None, t: i18n.Catalog) -> str:
    return t("delivery_no_country") if code is None else t.country(code)


def country_count(n: int | None, t: i18n.Catalog) -> str:
    """A country's count in the PDF: the number, or "fewer than 10" for a hidden cell."""
    return t("delivery_fewer", n=breakdowns.MINIMUM) if n is None else t.number(n)


def csv_count(n: int | None) -> str:
    """A country's count in the CSV: the number, or `<10` for a hidden cell."""
    return f"<{breakdowns.MINIMUM}" if n is None else str(n)


def hidden_note(p: Pack, t: i18n.Catalog) -> str | None:
    """Why some countries have no number (the open cells then do not add up to the total);
    None when every cell is open."""
    if all(n is not None for _, n in p.by_country):
        return None
    return t("delivery_fewer_note", n=breakdowns.MINIMUM)


def milestone_line(m: Milestone, t: i18n.Catalog) -> str:
    share = babel.numbers.format_percent(
        m.percent / 100, locale=t.locale, numbering_system="default"
    )
    values = {"percent": share, "count": t.number(m.signatures)}
    if m.reached_at is None:
        return t("delivery_not_reached", **values)
    return t("delivery_milestone", **values, date=hour(m.reached_at, t))


def iso(timestamp: int | None) -> str:
    if timestamp is None:
        return ""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


# --- CSV -----------------------------------------------------------------------------------------


def csv_text(p: Pack) -> str:
    """The pack as CSV: blocks (the petition; by country; by partner, if asked; milestones;
    names, if made with them), each with a header row, separated by an empty line."""
    t = p.catalog
    blocks: list[list[list[str]]] = [
        [
            ["field", "value"],
            ["petition", p.slug],
            ["lang", p.lang],
            ["title", p.title],
            ["target", p.target],
            ["statement", "\n\n".join(p.statement)],
            ["opened_at", iso(p.opened_at)],
            ["closed_at", iso(p.closed_at)],
            ["generated_at", iso(p.generated_at)],
            ["goal", str(p.goal)],
            ["signatures", str(p.total)],
            ["named", "" if p.names is None else str(len(p.names))],
            ["counted_not_named", "" if p.names is None else str(p.not_named)],
        ],
        [
            ["country", "country_name", "signatures"],
            *[[code or "", country_name(code, t), csv_count(n)] for code, n in p.by_country],
        ],
    ]
    if p.by_partner is not None:
        blocks.append([["partner", "signatures"], *[[name, str(n)] for name, n in p.by_partner]])
    blocks.append(
        [
            ["milestone_percent", "signatures", "reached_at"],
            *[[str(m.percent), str(m.signatures), iso(m.reached_at)] for m in p.milestones],
        ]
    )
    if p.names is not None:
        blocks.append(
            [["name", "country", "country_name"]]
            + [[s.name, s.country or "", country_name(s.country, t)] for s in p.names]
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for i, block in enumerate(blocks):
        if i:
            out.write("\r\n")
        writer.writerows([[export.neutralise(cell) for cell in row] for row in block])
    return out.getvalue()
