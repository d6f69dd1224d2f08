"""The trending rule: is the last hour's rate of a partner, or of an email domain, a spike
against its usual rate? Pure.

The last hour is the 60 minutes up to now; its usual rate is the median of the same 60 minutes
on each of the previous `BASELINE_DAYS` days (one hour of the day is not like another, so the
same hour is the fair comparison; the median, not the mean, so that one earlier spike does not
raise the bar). Days before the petition's first submission are left out, and without one
previous day there is no usual rate and no flag. A spike is at least `SPIKE_MINIMUM`
submissions and more than `SPIKE_FACTOR` times the usual rate: a partner that goes from 2 to
7 in an hour is not news, one that goes from 30 to 400 is.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence

HOUR = 3_600
DAY = 86_400
BASELINE_DAYS = 7
SPIKE_FACTOR = 3
SPIKE_MINIMUM = 20


def usual(previous: Sequence[int]) -> float | None:
    """The usual rate from the previous days' counts of the same hour (None: no history)."""
    return float(statistics.median(previous)) if previous else None


def is_spike(last: int, usual_rate: float | None) -> bool:
    return usual_rate is not None and last >= SPIKE_MINIMUM and last > SPIKE_FACTOR * usual_rate


@dataclasses.dataclass(frozen=True)
class Trend:
    """One row of the trending panel: what it is about, its last hour and its usual rate."""

    label: str | None  # a partner code, a domain's mark; None for "no partner"
    last: int
    usual: float | None
    known: bool = True  # a partner code that belongs to a partner (not one from a snippet only)

    @property
    def spike(self) -> bool:
        return is_spike(self.last, self.usual)


def trends(
    counts: dict[tuple[str | None, bool], dict[int, int]], days: int, minimum: int = 0
) -> list[Trend]:
    """Rows from counts per (label, known) and day back (0: the last hour), with `days`
    previous days of history; rows whose last hour is under `minimum` are left out (a small
    count beside a domain could point at a person). Spikes first, then the busiest."""
    rows = []
    for (label, known), by_day in counts.items():
        last = by_day.get(0, 0)
        if last < minimum or (last == 0 and not any(by_day.values())):
            continue
        previous = [by_day.get(k, 0) for k in range(1, days + 1)]
        rows.append(Trend(label, last, usual(previous), known))
    return sorted(rows, key=lambda t: (not t.spike, -t.last, t.label or ""))


def mark(domain_key: str) -> str:
    """How the panel names an email domain: the first characters of its keyed hash, which
    only the server's key makes from a domain (the owner matches it by typing a domain into
    the look-up, which shows the same mark)."""
    return domain_key[:8]
