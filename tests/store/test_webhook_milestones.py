"""`petition.milestone`, on both engines: a plain goal raised announces the milestones still
ahead, each once, never a repeat; and for an `auto_goal` petition, past 25, 50, 75 and 100 %
of the stored goal, each step the shown goal moves through (100, 200, 500, ...) is a milestone
too, as 100 % of the goal it was, once; both where signatures count, in the signing plan (a
`"none"` petition) and on confirmation; an endpoint added later hears of the steps ahead only.
Rows are read from the outbox: delivery itself is tested in test_webhooks.py."""

from __future__ import annotations

import dataclasses
from typing import Any

from server.domain import webhooks as wh
from server.domain.petitions import Petition
from server.store import confirmations, webhooks
from server.store.storage import Storage
from tests.store.test_webhooks import T, run, sign, signature, targets, waiting_rows
from tests.support import petitions

GOAL = 50  # the stored goal: the steps above it are 100, 200, 500, ...
NOWHERE = "http://127.0.0.1:9/hook"  # nothing delivers in these tests


def auto_goal(confirmation: str = "none") -> Petition:
    return dataclasses.replace(petitions.example(confirmation), auto_goal=True, goal=GOAL)


async def opened(url: str, petition: Petition) -> tuple[Storage, int]:
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    await storage.import_petitions([petition])
    pid = await storage.petition_id(petition.slug)
    assert pid is not None
    return storage, pid


async def endpoint(storage: Storage, pid: int) -> int:
    new_id, _ = await webhooks.add(
        storage, petition_id=pid, url=NOWHERE, allow_http=True, allow_private=True, now=T
    )
    return new_id


async def sign_counted(storage: Storage, pid: int, first: int, n: int) -> None:
    """`n` signatures that count at once, as `web/submission.sign` makes them on an
    `auto_goal` petition (the flag and the endpoints from the registry)."""
    found = await targets(storage, pid)
    batch = [
        dataclasses.replace(
            signature(pid, f"m{first + i}@example.org", targets=found), auto_goal=True
        )
        for i in range(n)
    ]
    await sign(storage, *batch)


async def milestones(storage: Storage) -> list[dict[str, Any]]:
    return [r["data"] for r in await waiting_rows(storage) if r["type"] == wh.MILESTONE]


def reached(data: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(d["goal"], d["milestone"]) for d in data]


def test_a_raised_goal_announces_the_milestones_ahead_once_each(database_url: str) -> None:
    """`goal` raised from the dashboard or the file (`Storage.set_petition_goal`, which calls
    `events.goal_changed`): "once per milestone and goal value", so the percentages of the new
    goal the count has passed are recorded without an event, those ahead fire once each as the
    count reaches them, and lowering and raising it again repeats none."""

    async def check() -> None:
        petition = dataclasses.replace(petitions.example(), goal=10)
        storage, pid = await opened(database_url, petition)
        await endpoint(storage, pid)
        found = await targets(storage, pid)
        counted = 0

        async def sign_up_to(total: int) -> list[tuple[int, int]]:
            nonlocal counted
            before = len(await milestones(storage))
            await sign(storage, *(signature(pid, f"g{i}@example.org", targets=found)
                                  for i in range(counted, total)))  # fmt: skip
            counted = total
            return reached((await milestones(storage))[before:])

        assert await sign_up_to(6) == [(10, 25), (10, 50)]  # 3 and 5 of 10
        assert await storage.set_petition_goal(pid, 20)
        assert await sign_up_to(9) == []  # 25 % of 20 (5) was passed before the raise
        assert await sign_up_to(12) == [(20, 50)]
        assert await sign_up_to(15) == [(20, 75)]
        assert await sign_up_to(20) == [(20, 100)]
        assert await sign_up_to(23) == []
        # Down and up again: every milestone of 10 and 20 was fired or passed: no repeat.
        assert await storage.set_petition_goal(pid, 10)
        assert await storage.set_petition_goal(pid, 20)
        assert await sign_up_to(25) == []
        # A new goal value has milestones of its own: those ahead of 25 fire once.
        assert await storage.set_petition_goal(pid, 40)
        assert await sign_up_to(29) == []  # 10 and 20 of 40 passed
        assert await sign_up_to(30) == [(40, 75)]
        assert await sign_up_to(45) == [(40, 100)]
        data = await milestones(storage)
        assert len(reached(data)) == len(set(reached(data))) == 7
        # Each with the count when it fired: the writer's group that crossed it.
        for d, upto in zip(data, (6, 6, 12, 15, 20, 30, 45), strict=True):
            assert wh.threshold(d["goal"], d["milestone"]) <= d["signatures"] <= upto
        await storage.disconnect()

    run(check())


def test_each_auto_goal_step_is_a_milestone_once(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url, auto_goal())
        await endpoint(storage, pid)
        await sign_counted(storage, pid, 0, 60)
        assert reached(await milestones(storage)) == [
            (GOAL, 25), (GOAL, 50), (GOAL, 75), (GOAL, 100),
        ]  # fmt: skip
        await sign_counted(storage, pid, 60, 45)  # 105: past the first step, 100
        await sign_counted(storage, pid, 105, 100)  # 205: past 200
        await sign_counted(storage, pid, 205, 1)  # nothing new
        data = await milestones(storage)
        assert reached(data)[4:] == [(100, 100), (200, 100)]
        # The count when it fired: the writer's group that crossed the step.
        assert set(data[4]) == {"petition", "signatures", "goal", "milestone"}
        assert data[4]["petition"] == auto_goal().slug and 100 <= data[4]["signatures"] <= 105
        assert 200 <= data[5]["signatures"] <= 205
        await storage.disconnect()

    run(check())


def test_a_petition_without_auto_goal_has_no_steps(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url, dataclasses.replace(auto_goal(), auto_goal=False))
        await endpoint(storage, pid)
        found = await targets(storage, pid)
        await sign(storage, *(signature(pid, f"p{i}@example.org", targets=found)
                              for i in range(105)))  # fmt: skip
        assert [d["goal"] for d in await milestones(storage)] == [GOAL] * 4
        await storage.disconnect()

    run(check())


def test_a_step_reached_by_a_confirmation_is_a_milestone(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url, auto_goal())
        await endpoint(storage, pid)
        await sign_counted(storage, pid, 0, 99)
        # The same petition now confirms by email: the 100th signature counts on confirmation.
        await storage.import_petitions([auto_goal("email")])
        s = signature(pid, "last@example.org", confirm=True, targets=await targets(storage, pid))
        await sign(storage, s)
        assert s.confirm is not None
        before = len(await milestones(storage))
        await confirmations.confirm(storage, s.confirm.digest, int(T) + 60)
        assert reached((await milestones(storage))[before:]) == [(100, 100)]
        await storage.disconnect()

    run(check())


def test_an_endpoint_added_later_hears_only_of_the_steps_ahead(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url, auto_goal())
        await sign_counted(storage, pid, 0, 205)  # no endpoint yet: nothing is written
        assert await waiting_rows(storage) == []
        await endpoint(storage, pid)
        await sign_counted(storage, pid, 205, 1)
        assert await milestones(storage) == []  # 25 % ... 100 %, 100 and 200 are past
        await sign_counted(storage, pid, 206, 294)  # 500
        assert reached(await milestones(storage)) == [(500, 100)]
        await storage.disconnect()

    run(check())
