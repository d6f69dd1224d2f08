"""`auto_goal`: the goal a petition shows once its count reaches the stored one (pure)."""

from __future__ import annotations

import pytest

from server.domain import goals


def test_the_steps_are_one_two_five_from_a_hundred() -> None:
    assert goals.steps()[:10] == [100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000,
                                  100_000]  # fmt: skip
    assert goals.steps()[-1] == 5_000_000_000


@pytest.mark.parametrize(
    ("count", "step"),
    [(0, 100), (99, 100), (100, 200), (199, 200), (200, 500), (499, 500), (500, 1_000),
     (999, 1_000), (1_000, 2_000), (4_999, 5_000), (5_000, 10_000), (123_456, 200_000),
     (999_999_999, 1_000_000_000)],
)  # fmt: skip
def test_next_step_is_strictly_above_the_count(count: int, step: int) -> None:
    assert goals.next_step(count) == step


def test_below_the_goal_the_stored_goal_is_shown() -> None:
    assert goals.shown_goal(0, 150) == 150
    assert goals.shown_goal(149, 150) == 150


def test_reaching_the_goal_moves_to_the_next_step_above_the_count() -> None:
    assert goals.shown_goal(150, 150) == 200
    assert goals.shown_goal(100, 100) == 200
    assert goals.shown_goal(201, 150) == 500
    assert goals.shown_goal(12_345, 10_000) == 20_000


def test_never_below_the_stored_goal() -> None:
    # An owner raising the goal above the step wins; a step below it never shows.
    assert goals.shown_goal(120, 100, highest=200) == 200
    assert goals.shown_goal(120, 300, highest=200) == 300
    assert goals.shown_goal(350, 300) == 500


def test_never_decreases_when_the_count_falls_back() -> None:
    shown = goals.shown_goal(520, 100)
    assert shown == 1_000
    # Signatures withdrawn: the count is below the step again, and below the stored goal.
    assert goals.shown_goal(480, 100, highest=shown) == 1_000
    assert goals.shown_goal(50, 100, highest=shown) == 1_000


@pytest.mark.parametrize(
    ("count", "goal", "steps"),
    [(99, 100, []), (100, 100, []), (199, 100, []), (200, 100, [200]),
     (1_000, 100, [200, 500, 1_000]), (600, 150, [200, 500]), (600, 1_000, []),
     (250, 50, [100, 200])],
)  # fmt: skip
def test_the_steps_reached_are_those_above_the_stored_goal(
    count: int, goal: int, steps: list[int]
) -> None:
    """Each was the goal shown until the count reached it: the webhooks' milestones."""
    assert goals.steps_reached(count, goal) == steps
    assert all(goals.shown_goal(step - 1, goal) == step for step in steps)
