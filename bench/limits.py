"""One flush of the shared limit store (`LimitStore.flush`), beside a bare transaction.

`python -m bench.limits [--postgres URL]`: on a fresh SQLite file (its limit store is the side
file `<database>-limits`) and, with `--postgres`, a fresh PostgreSQL database, it times one
flush in each of these states, every one set up again before each timed flush so that they
all stay the same from flush to flush:

- **bare**: `SELECT 1` in a transaction of the limit store (`Engine.limits`): the floor.
- **idle**: the server's seven limiters, nothing pending, nothing hot, nothing announced. Every
  flush still reads the announcements (`limit_hot`): a worker that serves nobody learns of the
  clients that hit their limits elsewhere.
- **hot N** (100, and `MAX_HOT`, 2,000): nothing pending, but N keys hot here (at half their
  limit) and announced in the last `ANNOUNCED_FOR` s: the flush reads back their N totals
  (N / `READ_BACK` statements) and the N announcements, all of them already known here.
- **announce 100**: 100 new keys hit once, each of which turns hot: the flush adds the 100
  hits, writes 100 announcements and reads the 100 totals and announcements back.
- **adopt 100**: another worker announced 100 keys this one has never seen: the flush reads
  the announcements and then their totals (`SharedLimiter.adopt`).

The states run in rounds, in alternate order, so that a machine whose speed drifts moves them
all alike; per state it says the median over every timed flush, the range of the rounds'
medians, and this process's CPU time per flush (on SQLite the whole flush runs on the worker's
event loop; on PostgreSQL the database server's own share is not in it). A worker flushes
every `FLUSH_EVERY` (0.25 s), so 4 flushes a second: µs per flush × 4 is its cost per worker
per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import run
from server import wiring
from server.domain.challenge import Switch
from server.domain.ratelimit import FLUSH_EVERY, MAX_HOT, Limits, SharedLimiter
from server.store.limits import LimitStore
from server.store.storage import Storage

T = 1_700_000_000.0 + 30  # a fixed clock, well inside a key period: announcements stay recent
BILLION = 10**9  # the bench server's limits (`servers.ours`): none ever refuses


class Clock:
    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> float:
        return self.now


def _limits(clock: Clock) -> tuple[Limits, SharedLimiter]:
    """The server's seven limiters (as `server.wiring` makes them: sign, client, token, login,
    network and the "auto" challenge's two), at the bench server's billion a minute except
    `client`, at 2 a minute so that one hit makes a key hot; returns `client` too."""
    limits = Limits(clock)
    for name in ("sign", "token"):
        limits.limiter(name, BILLION)
    client = limits.limiter("client", 2)
    limits.limiter("login", BILLION, slot=1, slots=60)
    wiring.network_limiter(limits, BILLION)
    Switch(limits)
    return limits, client


class State:
    """A state of the store and of one worker's limiters, made again (untimed) before each
    timed flush, with the flush to time."""

    def __init__(self, storage: Storage, clock: Clock, name: str, hot: int = 0) -> None:
        self.storage = storage
        self.clock = clock
        self.name = name
        self.hot = hot
        self.store: LimitStore | None = None
        self.limits: Limits | None = None

    async def _empty(self) -> None:
        async with self.storage.engine.limits() as tx:
            await tx.execute("DELETE FROM limit_counts")
            await tx.execute("DELETE FROM limit_hot")
        if self.storage.engine.name == "postgresql":
            # The dead rows would otherwise pile up (thousands a second here, far more than a
            # server makes) and every later flush would scan them until autovacuum came: the
            # bloat would be timed, not the flush. Not TRUNCATE: the next statement on a
            # truncated table waits for its relation to be reloaded and its plan remade.
            await self.storage.engine.database.execute("VACUUM limit_counts, limit_hot")

    async def prepare(self, serial: int) -> None:
        """The state, from empty tables and new limiters; `serial` makes each flush's keys new."""
        await self._empty()
        limits, client = _limits(self.clock)
        self.limits = limits
        store = LimitStore(self.storage.engine, limits)
        keys = [f"198.51.{serial % 256}.{i}:{serial}" for i in range(max(self.hot, 100))]
        if self.name.startswith("hot"):
            for key in keys[: self.hot]:
                client.hit(key)
            await store.flush(self.clock.now)  # adds, announces and reads back: now steady
        elif self.name == "announce 100":
            for key in keys[:100]:
                client.hit(key)
        elif self.name == "adopt 100":
            other, theirs = _limits(self.clock)
            for key in keys[:100]:
                theirs.hit(key)
            await LimitStore(self.storage.engine, other).flush(self.clock.now)
        self.store = store

    async def flush(self) -> None:
        if self.name == "bare":
            async with self.storage.engine.limits() as tx:
                await tx.fetch_all("SELECT 1")
            return
        assert self.store is not None
        await self.store.flush(self.clock.now)

    async def check(self) -> str:
        """After a timed flush: "" if the store and the limiters were in the state this one is
        named for, else what differed (a benchmark of the wrong state would mislead)."""
        if self.name == "bare":
            return ""
        async with self.storage.engine.limits() as tx:
            announced = await tx.fetch_val("SELECT COUNT(*) FROM limit_hot")
        assert self.limits is not None
        held = sum(limiter.held() for limiter in self.limits)
        want = {"idle": (0, 0), "announce 100": (100, 100), "adopt 100": (100, 100)}
        expected = want.get(self.name, (self.hot, self.hot))
        if (held, announced) != expected:
            return f"{self.name}: {held} keys held, {announced} announced; expected {expected}"
        return ""


def _states(storage: Storage, clock: Clock, hot: Sequence[int]) -> list[State]:
    names = ["bare", "idle", *(f"hot {n:,}" for n in hot), "announce 100", "adopt 100"]
    counts = [0, 0, *hot, 0, 0]
    return [State(storage, clock, name, n) for name, n in zip(names, counts, strict=True)]


async def _measure(url: str, rounds: int, flushes: int, hot: Sequence[int]) -> dict[str, Any]:
    storage = Storage(url)
    await storage.connect()
    try:
        await storage.migrate()
        clock = Clock()
        states = _states(storage, clock, hot)
        for state in states:  # warm up: tables made, statements prepared
            await state.prepare(0)
            await state.flush()
        walls: dict[str, list[list[float]]] = {s.name: [] for s in states}
        cpus: dict[str, list[float]] = {s.name: [] for s in states}
        serial = 1
        for r in range(rounds):
            for state in states if r % 2 == 0 else states[::-1]:
                wall, cpu = [], []
                for _ in range(flushes):
                    serial += 1
                    await state.prepare(serial)
                    cpu_before, started = time.process_time(), time.perf_counter()
                    await state.flush()
                    wall.append(time.perf_counter() - started)
                    cpu.append(time.process_time() - cpu_before)
                failed = await state.check()
                if failed:
                    raise RuntimeError(f"bench.limits: not the state measured: {failed}")
                walls[state.name].append(wall)
                cpus[state.name].extend(cpu)
        return {name: _figures(walls[name], cpus[name]) for name in walls}
    finally:
        await storage.disconnect()


def _figures(rounds: list[list[float]], cpu: list[float]) -> dict[str, float]:
    every = [t for each in rounds for t in each]
    medians = [statistics.median(each) for each in rounds]
    return {
        "median_us": statistics.median(every) * 1e6,
        "round_min_us": min(medians) * 1e6,
        "round_max_us": max(medians) * 1e6,
        "cpu_us": statistics.fmean(cpu) * 1e6,
        "flushes": len(every),
    }


def _table(engine: str, figures: dict[str, dict[str, float]]) -> list[str]:
    per_second = 1 / FLUSH_EVERY
    bare = figures["bare"]["median_us"]
    lines = [
        f"### {engine}",
        "",
        "| Flush | µs (median) | rounds' medians | − bare | this process's CPU µs | "
        f"ms per worker per second (×{per_second:g}) |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, f in figures.items():
        extra = "" if name == "bare" else f"{f['median_us'] - bare:+,.0f}"
        lines.append(
            f"| {name} | {f['median_us']:,.0f} | {f['round_min_us']:,.0f}–{f['round_max_us']:,.0f}"
            f" | {extra} | {f['cpu_us']:,.0f} | {f['median_us'] * per_second / 1e3:.2f} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limits", description=__doc__)
    add = parser.add_argument
    add("--rounds", type=int, default=5, help="rounds of every state, in alternate order (5)")
    add("--flushes", type=int, default=40, help="timed flushes per state per round (40)")
    add("--hot", default=f"100,{MAX_HOT}", help=f"hot keys to read back (100,{MAX_HOT})")
    add("--postgres", metavar="URL", help="also on a fresh PostgreSQL database (made, dropped)")
    add("--dir", help="where the SQLite files go (default: a temporary folder)")
    add("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    hot = [int(n) for n in args.hot.split(",") if n.strip()]

    def measure(url: str) -> dict[str, Any]:
        return asyncio.run(_measure(url, args.rounds, args.flushes, hot))

    results: dict[str, dict[str, Any]] = {}
    with run._folder(args.dir) as folder:
        results["SQLite"] = measure(f"sqlite:///{folder / 'limits.db'}")
        print("\n".join(_table("SQLite", results["SQLite"])) + "\n", flush=True)
    if args.postgres:
        with run._postgres_database(args.postgres) as url:
            results["PostgreSQL"] = measure(url)
        print("\n".join(_table("PostgreSQL", results["PostgreSQL"])) + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
