"""Progress toward a petition's goal, as every view shows it: the widget's bar, the dashboard's
rows and the badge. One definition, so the three never disagree on what "75%" means.

A count may pass its goal: the bar stops full, the share goes on (a petition at 120% says so
in the dashboard), and an accessible progress bar's `aria-valuemax` is never below its value.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Progress:
    count: int
    goal: int

    @property
    def share(self) -> float:
        """The count as a fraction of the goal, unbounded (1.2 past the goal by a fifth)."""
        return self.count / self.goal if self.goal > 0 else 0.0

    @property
    def filled(self) -> int:
        """How much of the bar is full, in signatures: at most the goal."""
        return min(self.count, self.goal)

    @property
    def percent(self) -> float:
        """How much of the bar is full, from 0 to 100."""
        return min(100.0, 100.0 * self.share)

    @property
    def value_max(self) -> int:
        """The bar's maximum for `aria-valuemax`, which may not be below its value."""
        return max(self.count, self.goal)
