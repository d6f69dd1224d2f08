"""The goal a petition shows when its file says `auto_goal = true` (pure).

When the count reaches the goal, the shown goal moves to the next step of 100, 200, 500,
1,000, 2,000, 5,000, ... above the count (the steps Proca's widget uses), so a petition past
its goal still has a bar to fill. The shown goal is never below the stored goal (the file's,
or the dashboard's), and it never decreases: a count that falls back (withdrawals, an owner
erasing signatures) leaves it where it was. That rule needs memory, so the caller passes the
highest goal shown so far (`highest`), which the store keeps (`petitions.shown_goal`).
"""

from __future__ import annotations

_MANTISSAS = (1, 2, 5)


def steps() -> list[int]:
    """The steps from 100 up to 5,000,000,000 (past `petitions.MAX_GOAL`), for documentation
    and tests."""
    found, step = [], 100
    while step <= 5_000_000_000:
        found.append(step)
        step = next_step(step)
    return found


def next_step(count: int) -> int:
    """The smallest step of 100, 200, 500, 1,000, ... strictly above `count`."""
    if count < 100:
        return 100
    magnitude: int = 10 ** (len(str(count)) - 1)  # 100 for 100..999
    for mantissa in _MANTISSAS:
        if mantissa * magnitude > count:
            return mantissa * magnitude
    return 10 * magnitude


def shown_goal(count: int, goal: int, highest: int = 0) -> int:
    """The goal to show for `count` signatures, a stored `goal` and the highest goal shown so
    far: the stored goal until the count reaches it, then the next step above the count."""
    shown = goal if count < goal else max(goal, next_step(count))
    return max(shown, highest)


def steps_reached(count: int, goal: int) -> list[int]:
    """The steps above the stored `goal` that `count` has reached, lowest first: each was the
    goal shown until the count reached it (a jump past several reaches each of them), and is an
    `auto_goal` petition's milestone (`store/events.check_milestones`, its `steps`)."""
    found, step = [], next_step(goal)
    while step <= count:
        found.append(step)
        step = next_step(step)
    return found
