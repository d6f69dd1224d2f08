"""Where the sign path spends its time: py-spy samples the running server during a sign load
(and, with confirmation by email, during that sign load, the mail job's drain and the
confirmation load, each into a file of its own).

`recording` runs `py-spy record` on the server process for the length of a load and keeps the
raw samples (one line per distinct stack: `thread;frame;frame;... count`, the input of
flamegraph.pl or speedscope). `summarise` turns them into a short table: the share of samples
per thread, the functions where samples land (self), and the larger subtrees (inclusive).
Samples are taken only from the thread holding the GIL (`--gil`): one process runs Python on
one core at a time, so that is where its throughput goes. Time a thread spends without the
GIL (in an fsync, in SQLite's C code, waiting for the network) does not appear.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

SAMPLES = "sign-profile.txt"  # the sign path (confirmation none); the others are named by run.py
RATE = 250  # samples per second


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(pid: int, out: Path, seconds: float, samples: str = SAMPLES) -> Iterator[None]:
    program = py_spy()
    if program is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy (or '.[bench]')")
    command = [
        program, "record", "--pid", str(pid), "--rate", str(RATE), "--threads", "--gil",
        "--format", "raw", "--output", str(out / samples), "--duration", str(int(seconds) + 120),
    ]  # fmt: skip
    log = (out / "py-spy.log").open("ab")  # one log for every recording of the run
    spy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its samples when interrupted
        try:
            spy.wait(60)
        finally:
            log.close()
    if spy.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"py-spy failed: {(out / 'py-spy.log').read_text()[-1000:]}")


@dataclasses.dataclass
class Summary:
    text: str


def _line(frame: str) -> str:
    """`function (path/to/file.py:12)` -> `function (file.py:12)`: where a sample landed."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if where else name


def _function(frame: str) -> str:
    """`function (path/to/file.py:12)` -> `function (file.py)`: a function, all its lines."""
    return _line(frame).rsplit(":", 1)[0] + ")" if ":" in frame else frame


def summarise(
    out: Path, top: int = 25, samples: str = SAMPLES, title: str = "the sign path"
) -> Summary:
    threads: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in (out / samples).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]  # "thread (123): MainThread" -> "MainThread"
        total += n
        threads[thread] += n
        if len(frames) > 1:
            own[f"{thread}: {_line(frames[-1])}"] += n
        for function in {_function(f) for f in frames[1:]}:
            inclusive[function] += n
    if not total:
        return Summary(f"## Profile of {title}\n\nNo samples in {out / samples}.")
    lines = [
        f"## Profile of {title} (py-spy, 1 worker, SQLite)",
        "",
        f"{total:,} samples at {RATE}/s of the thread holding the GIL; raw stacks in "
        f"`{out / samples}`.",
        "",
        "| Thread | Share |",
        "|---|--:|",
        *_threads(threads, total),
        "",
        "| Where samples land (self) | Share |",
        "|---|--:|",
        *(f"| `{f}` | {n / total:.1%} |" for f, n in own.most_common(top)),
        "",
        "| Function, with what it calls (inclusive) | Share |",
        "|---|--:|",
        *(f"| `{f}` | {n / total:.1%} |" for f, n in inclusive.most_common(top * 2)),
    ]
    return Summary("\n".join(lines))


def _threads(threads: collections.Counter[str], total: int) -> list[str]:
    """A row per thread with at least 1% of the samples, then the rest together (aiosqlite
    starts a thread per connection, and confirmations open one per request)."""
    rows, rest, others = [], 0, 0
    for thread, n in threads.most_common():
        if n / total >= 0.01:
            rows.append(f"| {thread} | {n / total:.0%} |")
        else:
            rest, others = rest + n, others + 1
    if others:
        rows.append(f"| {others:,} other threads | {rest / total:.0%} |")
    return rows
