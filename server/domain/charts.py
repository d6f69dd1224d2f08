"""Bar charts of signatures over time, drawn as inline SVG by our own code (no chart library,
no CDN, no script): the dashboard's Content-Security-Policy allows nothing else, and a chart
that is plain markup prints, scales and works without JavaScript.

Its words, dates and numbers are the reader's language's (`t`, the catalog's dashboard texts,
with CLDR's date forms and digits); English when no catalog is given.

Pure: counts per time bucket in, markup out. Buckets are UTC, `size` seconds long and start at
multiples of `size` (days at 00:00 UTC). Each chart is an `<svg role="img">` with a `<title>`
and a `<desc>` that says the total and the busiest bucket, a tooltip on every bar, and the
same numbers as a table under a disclosure, for screen readers and for copying. Colours come
from classes that the dashboard's stylesheet sets (inline styles are not allowed there).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

from server.domain import i18n

HOUR = 3600
DAY = 86400
WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 30  # room for the axis labels
MAX_LABELS = 8  # bucket labels under the bars, at most


@dataclasses.dataclass(frozen=True)
class Bar:
    start: int  # UTC timestamp where the bucket starts
    count: int


def bars(counts: Mapping[int, int], start: int, end: int, size: int) -> list[Bar]:
    """Every bucket from the one holding `start` to the one holding `end`, empty ones too."""
    first, last = start // size * size, end // size * size
    return [Bar(t, counts.get(t, 0)) for t in range(first, last + 1, size)]


def nice_top(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... (times a power of ten) that is >= value, so
    axis lines fall on round numbers."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def grid_step(top: int) -> int:
    """The distance between grid lines up to `top` (a `nice_top`): round, at most 5 lines."""
    step = 1
    while top // step > 5 or top % step:
        step = nice_top(step + 1)
    return step


def label(start: int, size: int, *, long: bool = False, t: i18n.Catalog | None = None) -> str:
    """`Nov 24` for a day; `21:00` for an hour (`Nov 24, 21:00` when `long`, or at midnight),
    in the forms CLDR gives the language (`24 нояб.`, `21 أبريل`)."""
    t = t or i18n.catalog(i18n.DEFAULT_LANGUAGE)
    moment = datetime.datetime.fromtimestamp(start, datetime.UTC)
    if size >= DAY:
        return t.skeleton(moment, "yMMMd" if long else "MMMd")
    if long or (moment.hour == 0 and size == HOUR):
        return t.skeleton(moment, "MMMdHm")
    return t.skeleton(moment, "Hm")


def bar_chart(
    series: Sequence[Bar],
    size: int,
    *,
    title: str,
    chart_id: str,
    t: i18n.Catalog | None = None,
) -> Markup:
    """An accessible bar chart of `series` with a table fallback."""
    t = t or i18n.catalog(i18n.DEFAULT_LANGUAGE)
    total = sum(b.count for b in series)
    peak = max(series, key=lambda b: b.count, default=None)
    if peak is None or peak.count == 0:
        summary = t.admin("chart_none")
    else:
        key = "chart_summary_day" if size >= DAY else "chart_summary_hour"
        when = label(peak.start, size, long=True, t=t)
        summary = t.admin(key, total=total, peak=peak.count, when=when)
    top = nice_top(peak.count if peak else 0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(series))
    gap = min(2.0, step * 0.2)
    ident = escape(chart_id)
    out = [
        f'<figure class="chart" id="{ident}">',
        f'<div class="chart-frame"><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" class="chart-svg">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(summary)}</desc>',
    ]
    for value in range(0, top + 1, grid_step(top)):  # horizontal lines at round numbers
        y = TOP + plot_h - plot_h * value / top
        out.append(
            f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="chart-axis" x="{LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{t.number(value)}</text>'
        )
    for i, b in enumerate(series):
        height = plot_h * b.count / top
        x = LEFT + i * step + gap / 2
        y = TOP + plot_h - height
        tip = f"{label(b.start, size, long=True, t=t)}: {t.number(b.count)}"
        out.append(
            f'<rect class="chart-bar" x="{x:.1f}" y="{y:.1f}" width="{step - gap:.1f}" '
            f'height="{height:.1f}"><title>{escape(tip)}</title></rect>'
        )
    every = max(1, math.ceil(len(series) / MAX_LABELS))
    for i in range(0, len(series), every):
        x = LEFT + i * step + step / 2
        out.append(
            f'<text class="chart-axis" x="{x:.1f}" y="{HEIGHT - 10}" text-anchor="middle">'
            f"{escape(label(series[i].start, size, t=t))}</text>"
        )
    out.append("</svg></div>")
    unit = t.admin("chart_day" if size >= DAY else "chart_hour")
    column = t.admin("col_signatures")
    out += [
        f'<figcaption>{escape(summary)}</figcaption><details class="chart-table">'
        f"<summary>{escape(t.admin('chart_table', title=title))}</summary><table>",
        f'<thead><tr><th scope="col">{escape(unit)}</th>'
        f'<th scope="col" class="num">{escape(column)}</th></tr></thead><tbody>',
    ]
    for b in series:
        out.append(
            f"<tr><td>{escape(label(b.start, size, long=True, t=t))}</td>"
            f'<td class="num">{t.number(b.count)}</td></tr>'
        )
    out.append("</tbody></table></details></figure>")
    return Markup("".join(out))  # noqa: S704 - every text above went through escape()
