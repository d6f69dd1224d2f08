"""The group-commit writer on a fake engine: grouping, answers after the commit, failures by
kind, back-pressure, the drain at shutdown, hung-up clients and the watchdog. No database.

The fake engine drives the signing plan as the real adapters do, answering each statement with
the row a database would give (a claimed nonce, an inserted id, the petition's total), and keeps
what it "commits" in a few in-memory tables; a group's changes are kept only if it commits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, ClassVar

import pytest

from server.domain.errors import StorageUnavailable
from server.domain.signatures import Consent, NewSignature
from server.domain.validation import validate_signer
from server.store import writer as writer_module
from server.store.engine import Engine, FailureKind, Many, Plan, Transaction
from server.store.writer import Writer

NOW = 1_700_000_000.0
CONSENT = Consent("en", "consent text")


class Down(Exception):
    """The database cannot be used (connection lost, disk full): "unavailable"."""


class Deadlock(Exception):
    """A conflict with another group: "retry"."""


class Refused(Exception):
    """A row the database refuses (a constraint): "data"."""


class FakeEngine(Engine):
    name: ClassVar[str] = "fake"
    types: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        # No `Engine.__init__`: no `databases.Database`, nothing to connect to.
        self.gate = asyncio.Event()  # a group waits here before its commit while this is clear
        self.gate.set()
        self.delay = 0.0  # seconds a commit takes (a slow disk)
        self.failures: list[BaseException] = []  # raised by the next attempts, one each
        self.refused: set[str] = set()  # email keys whose insert the database refuses
        self.reached = 0  # groups that got as far as their commit
        self.in_flight = 0
        self.max_in_flight = 0
        self.attempts: list[list[str]] = []  # nonces of each attempted group, in order
        self.commits: list[list[str]] = []  # nonces of each committed group, in order
        self.consent_inserts = 0  # statements that added a consent text
        # The committed tables.
        self.consents: set[str] = set()
        self.claimed: dict[str, str | None] = {}  # nonce -> email digest
        self.signed: set[tuple[int, str]] = set()  # (petition, email key)
        self.counters: collections.Counter[int] = collections.Counter()

    async def run_plan(self, plan: Plan) -> list[int | None]:
        group: list[str] = []
        self.attempts.append(group)
        tx = _Changes()
        row: Any = None
        while True:
            try:
                step = plan.send(row)
            except StopIteration as done:
                outcome: list[int | None] = list(done.value)
                break
            if isinstance(step, Many):  # rows no statement reads back: one answer each, unread
                for values in step.values:
                    self._answer(step.sql, values, group, tx)
                row = None
                continue
            sql, values = step
            row = self._answer(sql, values, group, tx)
        self.reached += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.failures:
                raise self.failures.pop(0)
        finally:
            self.in_flight -= 1
        # COMMIT
        self.consents |= tx.consents
        self.claimed.update(tx.claimed)
        self.signed |= tx.signed
        self.counters.update(tx.counters)
        self.commits.append(group)
        return outcome

    def _answer(self, sql: str, values: dict[str, Any], group: list[str], tx: _Changes) -> Any:
        if "INSERT INTO consent_texts" in sql:
            self.consent_inserts += 1
            tx.consents.add(values["version"])
            return None
        if "INSERT INTO used_tokens" in sql:
            nonce = values["nonce"]
            group.append(nonce)
            if nonce in self.claimed or nonce in tx.claimed:
                return None
            tx.claimed[nonce] = values["digest"]
            return (nonce,)
        if "FROM used_tokens u" in sql:
            nonce = values["nonce"]
            return (tx.claimed.get(nonce, self.claimed.get(nonce)), None, None)
        if "INSERT INTO signatures" in sql:
            if values["email_key"] in self.refused:
                raise Refused(f"bad row: {values['email_key']}")
            key = (values["petition_id"], values["email_key"])
            if key in self.signed or key in tx.signed:
                return None
            tx.signed.add(key)
            return (len(self.signed) + len(tx.signed),)
        if "INSERT INTO counters" in sql:
            tx.counters[values["petition_id"]] += values["n"]
            return None
        if "FROM counters" in sql:  # the count, and whether the petition has endpoints (none)
            pid = values["petition_id"]
            return (self.counters[pid] + tx.counters[pid], False)
        raise AssertionError(f"unexpected statement: {sql}")

    @staticmethod
    def unavailable(exc: BaseException) -> bool:
        return isinstance(exc, Down)

    def classify(self, exc: BaseException) -> FailureKind:
        if isinstance(exc, Deadlock):
            return "retry"
        if isinstance(exc, Refused):
            return "data"
        return "unavailable"

    def database_options(self) -> dict[str, Any]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        raise NotImplementedError

    def limits(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        raise NotImplementedError

    async def lock_for_migration(self, tx: Transaction) -> None:
        raise NotImplementedError

    async def rebuild_files(self) -> None:
        raise NotImplementedError

    def raw_rows(self, conn: Any, sql: str, values: dict[str, Any]) -> AsyncIterator[Any]:
        raise NotImplementedError

    @property
    def committed(self) -> list[str]:
        """Nonces of every committed signature, in commit order."""
        return [nonce for group in self.commits for nonce in group]


class TwoWriterEngine(FakeEngine):
    """An engine that lets two groups commit at once (as PostgreSQL's adapter does)."""

    writer_concurrency: ClassVar[int] = 2
    shards: ClassVar[int] = 2


class _Changes:
    """What one attempt has written, kept only if it commits."""

    def __init__(self) -> None:
        self.consents: set[str] = set()
        self.claimed: dict[str, str | None] = {}
        self.signed: set[tuple[int, str]] = set()
        self.counters: collections.Counter[int] = collections.Counter()


def sig(name: str, petition_id: int = 1) -> NewSignature:
    """A signature whose nonce is `name`, by `name`@example.org."""
    return NewSignature(
        petition_id=petition_id,
        partner_id=None,
        unknown_partner=None,
        nonce=name,
        nonce_expires_at=2_000_000_000,
        signer=validate_signer({"name": "Test Signer", "email": f"{name}@example.org"}),
        lang="en",
        consent=CONSENT,
    )


def submitted(writer: Writer, *names: str) -> list[asyncio.Task[int | None]]:
    return [asyncio.create_task(writer.submit(sig(name))) for name in names]


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


# --- Grouping and answers ------------------------------------------------------------------------


def test_writer_signatures_arriving_during_a_commit_form_the_next_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer_module, "MAX_GROUP", 3)

    async def check() -> None:
        fake = FakeEngine()
        fake.gate.clear()
        writer = Writer(fake, lambda: NOW)
        await writer.start()
        first = submitted(writer, "s0")
        await until(lambda: fake.reached == 1)
        rest = submitted(writer, *(f"s{i}" for i in range(1, 8)))
        await until(lambda: writer.waiting == 8)
        await asyncio.sleep(0.02)
        assert fake.attempts == [["s0"]]  # nothing else starts while a group commits (one writer)
        fake.gate.set()
        results = await asyncio.gather(*first, *rest)
        await writer.close()
        # Everything that queued meanwhile goes in the next groups, in order, at most 3 a group.
        assert fake.commits == [["s0"], ["s1", "s2", "s3"], ["s4", "s5", "s6"], ["s7"]]
        assert max(len(g) for g in fake.attempts) <= 3
        assert fake.max_in_flight == 1
        assert results == [1, 4, 4, 4, 7, 7, 7, 8]

    run(check())


def test_writer_answers_each_signer_with_its_groups_count_after_the_commit() -> None:
    async def check() -> None:
        fake = FakeEngine()
        fake.gate.clear()
        writer = Writer(fake, lambda: NOW)
        answers: dict[str, tuple[int | None, bool]] = {}

        async def sign(s: NewSignature) -> None:
            count = await writer.submit(s)
            answers[s.nonce] = (count, s.nonce in fake.committed)

        tasks = [asyncio.create_task(sign(sig(n, p))) for n, p in [("a1", 1), ("b1", 2), ("a2", 1)]]
        await until(lambda: writer.waiting == 3)
        await writer.start()  # all three are queued: one group
        await until(lambda: fake.reached == 1)
        await asyncio.sleep(0.05)
        assert answers == {}  # written, not committed: nobody has been answered
        assert not any(t.done() for t in tasks)
        fake.gate.set()
        await asyncio.gather(*tasks)
        # Each gets its own petition's count after the group, and only once it was committed.
        assert answers == {"a1": (2, True), "b1": (1, True), "a2": (2, True)}

        tasks = [asyncio.create_task(sign(sig(n, p))) for n, p in [("b2", 2), ("a3", 1)]]
        await asyncio.gather(*tasks)
        await writer.close()
        assert answers["b2"] == (2, True)
        assert answers["a3"] == (3, True)
        assert fake.commits == [["a1", "b1", "a2"], ["b2", "a3"]]

    run(check())


def test_writer_answers_none_for_a_token_already_used_by_someone_else() -> None:
    async def check() -> None:
        fake = FakeEngine()
        writer = Writer(fake, lambda: NOW)
        await writer.start()
        assert await writer.submit(sig("t1")) == 1
        other = dataclasses.replace(sig("t1"), signer=sig("x").signer)  # same token, another
        assert await writer.submit(other) is None
        assert await writer.submit(sig("t1")) == 1  # the same submission retried: same answer
        await writer.close()
        assert fake.counters[1] == 1

    run(check())


# --- Failures ------------------------------------------------------------------------------------


def test_writer_unavailable_database_fails_the_whole_group_until_a_commit_succeeds() -> None:
    async def check() -> None:
        fake = FakeEngine()
        fake.failures = [Down("cannot reach s0@example.org's database")]
        writer = Writer(fake, lambda: NOW)
        tasks = submitted(writer, "s0", "s1", "s2")
        await until(lambda: writer.waiting == 3)
        await writer.start()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, StorageUnavailable) for r in results), results
        assert "example.org" not in " ".join(str(r) for r in results)  # no signer data
        assert len(fake.attempts) == 1  # not retried: the database is down
        assert fake.commits == []
        assert writer.failure == "Down"

        assert await writer.submit(sig("s3")) == 1  # the failed group counted nothing
        assert writer.failure is None
        await writer.close()

    run(check())


def test_writer_refused_row_retries_the_group_one_by_one() -> None:
    async def check() -> None:
        fake = FakeEngine()
        fake.refused = {"bad@example.org"}
        writer = Writer(fake, lambda: NOW)
        tasks = submitted(writer, "g1", "bad", "g2")
        await until(lambda: writer.waiting == 3)
        await writer.start()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await writer.close()
        assert results[0] == 1
        assert isinstance(results[1], StorageUnavailable)
        assert results[2] == 2
        # The group stops at the refused row; then each signature is tried alone.
        assert fake.attempts == [["g1", "bad"], ["g1"], ["bad"], ["g2"]]
        assert fake.commits == [["g1"], ["g2"]]
        assert "bad" not in fake.claimed  # its token is not used up
        assert fake.counters[1] == 2
        assert writer.failure is None  # cleared by g2's commit

    run(check())


def test_writer_conflicting_group_is_retried() -> None:
    async def check() -> None:
        fake = FakeEngine()
        fake.failures = [Deadlock(), Deadlock()]
        writer = Writer(fake, lambda: NOW)
        tasks = submitted(writer, "s0", "s1")
        await until(lambda: writer.waiting == 2)
        await writer.start()
        assert await asyncio.gather(*tasks) == [2, 2]
        await writer.close()
        assert fake.attempts == [["s0", "s1"]] * 3
        assert fake.commits == [["s0", "s1"]]
        assert writer.failure is None

    run(check())


def test_writer_conflicting_group_gives_up_after_the_retry_limit() -> None:
    async def check() -> None:
        fake = FakeEngine()
        fake.failures = [Deadlock() for _ in range(writer_module.RETRIES + 1)]
        writer = Writer(fake, lambda: NOW)
        await writer.start()
        with pytest.raises(StorageUnavailable):
            await writer.submit(sig("s0"))
        assert len(fake.attempts) == writer_module.RETRIES
        assert len(fake.failures) == 1  # the attempt after the limit was never made
        assert writer.failure == "Deadlock"
        fake.failures.clear()
        assert await writer.submit(sig("s1")) == 1
        await writer.close()

    run(check())


def test_writer_consent_text_is_added_until_a_commit_holds_it() -> None:
    async def check() -> None:
        fake = FakeEngine()
        fake.failures = [Down()]
        writer = Writer(fake, lambda: NOW)
        await writer.start()
        with pytest.raises(StorageUnavailable):
            await writer.submit(sig("s0"))
        assert fake.consents == set()
        assert await writer.submit(sig("s1")) == 1  # the failed group's consent is added again
        assert await writer.submit(sig("s2")) == 2  # and then not any more
        await writer.close()
        assert fake.consents == {CONSENT.version}
        assert fake.consent_inserts == 2

    run(check())


# --- Back-pressure, shutdown, hung-up clients, the watchdog -------------------------------------


def test_writer_refuses_at_once_when_too_many_signatures_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer_module, "MAX_WAITING", 3)

    async def check() -> None:
        fake = FakeEngine()
        fake.gate.clear()
        writer = Writer(fake, lambda: NOW)
        await writer.start()
        tasks = submitted(writer, "s0")
        await until(lambda: fake.reached == 1)
        tasks += submitted(writer, "s1", "s2")
        await until(lambda: writer.waiting == 3)
        # Refused without waiting: were it queued, the blocked engine would time this out.
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(writer.submit(sig("s3")), 1.0)
        assert writer.waiting == 3
        fake.gate.set()
        assert await asyncio.gather(*tasks) == [1, 3, 3]
        assert "s3" not in fake.committed  # the refused signature was not recorded
        assert await writer.submit(sig("s4")) == 4  # room again
        await writer.close()

    run(check())


@pytest.mark.parametrize("engine", [FakeEngine, TwoWriterEngine])
def test_writer_close_commits_every_queued_signature(
    monkeypatch: pytest.MonkeyPatch, engine: type[FakeEngine]
) -> None:
    monkeypatch.setattr(writer_module, "MAX_GROUP", 2)

    async def check() -> None:
        fake = engine()
        fake.delay = 0.03
        writer = Writer(fake, lambda: NOW)
        await writer.start()
        names = [f"s{i}" for i in range(7)]
        tasks = submitted(writer, *names)
        await until(lambda: writer.waiting == 7 and fake.reached >= 1)
        assert fake.commits == []  # all queued or committing when the server stops
        await writer.close()
        assert all(t.done() for t in tasks)
        results = [t.result() for t in tasks]
        assert None not in results
        assert sorted(fake.committed) == sorted(names)
        assert fake.counters[1] == 7
        if engine.writer_concurrency == 1:
            assert results == [2, 2, 4, 4, 6, 6, 7]
        # (Two groups at once each see the other's count only once it is committed.)
        assert fake.max_in_flight == engine.writer_concurrency

    run(check())


def test_writer_records_the_signature_of_a_signer_who_hung_up() -> None:
    async def check() -> None:
        fake = FakeEngine()
        fake.gate.clear()
        writer = Writer(fake, lambda: NOW)
        await writer.start()
        committing = submitted(writer, "s0")[0]
        await until(lambda: fake.reached == 1)
        queued = submitted(writer, "s1")[0]
        await until(lambda: writer.waiting == 2)
        committing.cancel()  # hung up while its group commits
        queued.cancel()  # hung up before its group began
        await asyncio.gather(committing, queued, return_exceptions=True)
        assert committing.cancelled() and queued.cancelled()
        assert writer.waiting == 0
        fake.gate.set()
        assert await writer.submit(sig("s2")) == 3  # both were counted before this one
        await writer.close()
        assert fake.committed == ["s0", "s1", "s2"]

    run(check())


def test_writer_watchdog_answers_a_signer_whose_commit_never_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer_module, "WAIT_TIMEOUT", 1.5)

    async def check() -> None:
        fake = FakeEngine()
        fake.gate.clear()  # a hung database
        writer = Writer(fake, lambda: NOW)
        await writer.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(StorageUnavailable):  # not TimeoutError: the watchdog answered
            await asyncio.wait_for(writer.submit(sig("s0")), 3.0)
        waited = loop.time() - started
        assert 1.5 <= waited < 2.6  # the deadline, caught by the next tick (every second)
        fake.gate.set()
        await writer.close()
        assert fake.committed == ["s0"]  # late, but recorded: a retry of it gets the same answer

    run(check())


# --- Regressions ---------------------------------------------------------------------------------


def test_writer_back_pressure_counts_signatures_whose_signers_hung_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hung-up signers left their signatures queued but freed their places: with a hung
    database the queue grew without bound. The limit counts queued signatures now."""
    monkeypatch.setattr(writer_module, "MAX_WAITING", 3)

    async def check() -> None:
        fake = FakeEngine()
        fake.gate.clear()
        writer = Writer(fake, lambda: NOW)
        await writer.start()
        tasks = submitted(writer, "s0")
        await until(lambda: fake.reached == 1)
        tasks += submitted(writer, "s1", "s2")
        await until(lambda: writer.waiting == 3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert writer.waiting == 0
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(writer.submit(sig("s3")), 1.0)
        fake.gate.set()
        await until(lambda: writer.queued == 0)
        assert await writer.submit(sig("s4")) == 4  # s0, s1 and s2 were recorded all the same
        await writer.close()

    run(check())


def test_writer_refuses_a_signature_once_closed() -> None:
    """A submit after close() used to wait forever: nothing was left to answer it."""

    async def check() -> None:
        writer = Writer(FakeEngine(), lambda: NOW)
        await writer.start()
        await writer.close()
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(writer.submit(sig("late")), 1.0)

    run(check())


class ShortEngine(FakeEngine):
    """An adapter with a bug: it answers a group with one result too few, once."""

    broken = True

    async def run_plan(self, plan: Plan) -> list[int | None]:
        outcome = await super().run_plan(plan)
        if self.broken:
            self.broken = False
            return outcome[:-1]
        return outcome


def test_writer_survives_an_adapter_that_answers_a_group_wrongly() -> None:
    """Settling a group outside the writer's guard let such a bug end the writer for good."""

    async def check() -> None:
        fake = ShortEngine()
        fake.gate.clear()
        writer = Writer(fake, lambda: NOW)
        await writer.start()
        first = submitted(writer, "s0", "s1")
        await until(lambda: writer.waiting == 2)
        fake.gate.set()
        results = await asyncio.gather(*first, return_exceptions=True)
        assert results[0] == 2
        assert isinstance(results[1], StorageUnavailable)
        assert await asyncio.wait_for(writer.submit(sig("s2")), 1.0) == 3  # still writing
        await writer.close()

    run(check())
