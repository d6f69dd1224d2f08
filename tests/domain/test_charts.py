"""Charts: buckets, scales and the accessible SVG with its table (pure)."""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
import zoneinfo

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


# --- Time zones, hour dates, toward the goal, partners over time (issue 16) ----------------------

MOSCOW = zoneinfo.ZoneInfo("Europe/Moscow")  # UTC+3 all year
KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")  # UTC+5:30
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")  # clocks change


def test_hours_count_for_the_local_day_in_which_they_start() -> None:
    late = NOV_24 + 21 * HOUR  # 21:00 UTC: already Nov 25 in Moscow
    days = charts.local_days({NOV_24 + 20 * HOUR: 2, late: 5}, MOSCOW)
    moscow_25 = int(datetime.datetime(2025, 11, 25, tzinfo=MOSCOW).timestamp())
    assert days == {moscow_25 - DAY: 2, moscow_25: 5}
    assert charts.label(late, HOUR, zone=MOSCOW) == "Nov 25, 00:00"
    # +5:30: the hour from 18:00 UTC is 23:30 in Kolkata, and counts for that day; the hour
    # from 19:00 UTC (00:30) for the next. Hour labels say the half hour.
    kolkata = charts.local_days({NOV_24 + 18 * HOUR: 1, NOV_24 + 19 * HOUR: 1}, KOLKATA)
    assert sorted(kolkata.values()) == [1, 1] and len(kolkata) == 2
    assert charts.label(NOV_24 + 18 * HOUR, HOUR, zone=KOLKATA) == "23:30"


def test_local_days_follow_the_zones_calendar_across_a_clock_change() -> None:
    start = int(datetime.datetime(2025, 10, 25, 12, tzinfo=BERLIN).timestamp())
    series = charts.day_bars({}, start, start + 2 * DAY, BERLIN)
    assert [charts.label(b.start, DAY, zone=BERLIN) for b in series] == [
        "Oct 25", "Oct 26", "Oct 27",
    ]  # fmt: skip
    assert series[2].start - series[1].start == 25 * HOUR  # the day clocks went back


def test_the_hourly_axis_says_the_date_of_each_day_it_shows() -> None:
    series = [Bar(NOV_24 + 12 * HOUR + i * HOUR, 1) for i in range(48)]
    markup = chart(series, HOUR)
    axis = re.findall(r'text-anchor="middle">([^<]+)<', markup)
    assert "Nov 24" in axis and "Nov 25" in axis and "Nov 26" in axis
    assert "12:00" in axis


def test_the_cumulative_chart_projects_the_last_weeks_pace() -> None:
    days = [Bar(NOV_24 + i * DAY, 10) for i in range(7)]  # 70, after 30 older ones
    markup = str(charts.cumulative_chart(days, 30, 200, title="Toward", chart_id="g"))
    ET.fromstring(markup)
    desc = ET.fromstring(markup).findtext(".//desc", "")
    assert desc.startswith("100 signatures of 200.")
    # 100 to go at 10 a day: ten days after Nov 30.
    assert "about 10 a day" in desc and "Dec 10, 2025" in desc
    assert 'class="chart-projection"' in markup and 'class="chart-goal"' in markup
    cells = [td.text for td in ET.fromstring(markup).iter("td")]
    assert cells[:2] == ["Nov 24, 2025", "40"] and cells[-1] == "100"


def test_the_cumulative_chart_says_when_there_is_no_projection() -> None:
    still = [Bar(NOV_24 + i * DAY, 0) for i in range(10)]
    desc = ET.fromstring(str(charts.cumulative_chart(still, 5, 100, title="t", chart_id="g")))
    assert "No signatures in the last 7 days: no projection." in desc.findtext(".//desc", "")
    done = [Bar(NOV_24, 150)]
    markup = str(charts.cumulative_chart(done, 0, 100, title="t", chart_id="g"))
    assert "The goal is reached." in markup and "chart-projection" not in markup
    slow = [Bar(NOV_24 + i * DAY, 1 if i == 6 else 0) for i in range(7)]
    markup = str(charts.cumulative_chart(slow, 0, 1_000_000, title="t", chart_id="g"))
    assert "more than ten years away" in markup


def test_partners_are_compared_as_lines_with_a_legend_and_a_table() -> None:
    a = [Bar(NOV_24 + i * DAY, n) for i, n in enumerate([1, 2, 3])]
    b = [Bar(NOV_24 + i * DAY, n) for i, n in enumerate([5, 0, 0])]
    markup = str(charts.lines_chart([("A <ngo>", a), ("B", b)], title="P", chart_id="p"))
    figure = ET.fromstring(markup)
    assert len(figure.findall(".//polyline")) == 2
    assert [li.text for li in figure.iter("li")] == [None, None]  # a swatch, then the text
    legend = "".join(figure.find(".//ul").itertext())  # type: ignore[union-attr]
    assert "A <ngo>: 6" in legend and "B: 5" in legend
    assert "Most signatures: A <ngo>, 6." in figure.findtext(".//desc", "")
    assert [td.text for td in figure.iter("td")][-3:] == ["Nov 26, 2025", "6", "5"]
