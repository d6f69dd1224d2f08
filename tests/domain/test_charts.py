"""Charts: buckets, scales and the accessible SVG with its table (pure)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from server.domain import charts
from server.domain.charts import DAY, HOUR, Bar

NOV_24 = 1_763_942_400  # 2025-11-24 00:00 UTC


def test_bars_cover_every_bucket_in_utc_with_zeros() -> None:
    series = charts.bars({NOV_24: 5, NOV_24 + 2 * DAY: 7}, NOV_24 + 3600, NOV_24 + 2 * DAY + 5, DAY)
    assert series == [Bar(NOV_24, 5), Bar(NOV_24 + DAY, 0), Bar(NOV_24 + 2 * DAY, 7)]
    hours = charts.bars({}, NOV_24 + 59 * 60, NOV_24 + 3 * HOUR, HOUR)
    assert [b.start for b in hours] == [NOV_24 + i * HOUR for i in range(4)]


def test_scale_tops_and_grid_lines_are_round() -> None:
    assert [charts.nice_top(v) for v in (0, 1, 3, 7, 11, 42, 99, 101, 4_321)] == [
        1, 1, 5, 10, 20, 50, 100, 200, 5_000,
    ]  # fmt: skip
    for top in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 20_000):
        step = charts.grid_step(top)
        assert top % step == 0 and top // step <= 5


def test_labels() -> None:
    assert charts.label(NOV_24, DAY) == "Nov 24"
    assert charts.label(NOV_24, DAY, long=True) == "Nov 24, 2025"
    assert charts.label(NOV_24 + 13 * HOUR, HOUR) == "13:00"
    assert charts.label(NOV_24, HOUR) == "Nov 24, 00:00"  # midnight says which day


def chart(series: list[Bar], size: int = DAY, title: str = "Per day") -> str:
    return str(charts.bar_chart(series, size, title=title, chart_id="c"))


def test_chart_is_well_formed_and_accessible() -> None:
    series = [Bar(NOV_24 + i * DAY, n) for i, n in enumerate([3, 0, 12, 7])]
    markup = chart(series)
    figure = ET.fromstring(markup)  # well-formed, so any browser parses it the same way
    svg = figure.find(".//svg")
    assert svg is not None and svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "c-title c-desc"
    assert svg.findtext("title") == "Per day"
    desc = svg.findtext("desc", "")
    assert "22 signatures in all" in desc and "12, on Nov 26, 2025" in desc
    assert len(svg.findall("rect")) == 4  # one bar per day, empty days too
    tips = [r.findtext("title") for r in svg.findall("rect")]
    assert tips[2] == "Nov 26, 2025: 12"
    cells = [td.text for td in figure.iter("td")]
    assert cells == ["Nov 24, 2025", "3", "Nov 25, 2025", "0", "Nov 26, 2025", "12",
                     "Nov 27, 2025", "7"]  # fmt: skip


def test_bar_heights_follow_the_counts() -> None:
    markup = chart([Bar(NOV_24, 10), Bar(NOV_24 + DAY, 5), Bar(NOV_24 + 2 * DAY, 0)])
    heights = [
        float(h) for h in re.findall(r'<rect class="chart-bar"[^>]* height="([\d.]+)"', markup)
    ]
    plot = charts.HEIGHT - charts.TOP - charts.BOTTOM
    assert heights == [plot, plot / 2, 0.0]  # top of the scale is 10


def test_long_series_keep_few_axis_labels() -> None:
    series = [Bar(NOV_24 + i * DAY, i) for i in range(366)]
    axis = re.findall(r'text-anchor="middle">([^<]+)<', chart(series))
    assert 2 <= len(axis) <= charts.MAX_LABELS


def test_an_empty_period_says_so() -> None:
    markup = chart([Bar(NOV_24 + i * HOUR, 0) for i in range(48)], HOUR)
    assert "No signatures in this period." in markup
    assert "NaN" not in markup and "inf" not in markup


def test_text_is_escaped() -> None:
    markup = chart([Bar(NOV_24, 1)], title='<script>alert("x")</script>')
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    ET.fromstring(markup)
