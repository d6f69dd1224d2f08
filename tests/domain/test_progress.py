"""Progress toward a goal: one definition for the widget, the dashboard and the badge."""

from __future__ import annotations

from server.domain.progress import Progress


def test_progress_below_the_goal() -> None:
    p = Progress(12_500, 50_000)
    assert (p.share, p.percent, p.filled, p.value_max) == (0.25, 25.0, 12_500, 50_000)


def test_progress_past_the_goal_fills_the_bar_and_keeps_the_share() -> None:
    p = Progress(60_000, 50_000)
    assert p.share == 1.2
    assert p.percent == 100.0
    assert p.filled == 50_000
    assert p.value_max == 60_000  # aria-valuemax is never below aria-valuenow


def test_progress_of_an_empty_petition() -> None:
    p = Progress(0, 100)
    assert (p.share, p.percent, p.filled, p.value_max) == (0.0, 0.0, 0, 100)
