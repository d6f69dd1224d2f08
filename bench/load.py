"""Driving wrk: the sign load (each request a new signer, drained before wrk ends) and the read
load (one GET repeated), with wrk's figures parsed into a `Load`.

wrk runs in its own process with its own event loop per thread, and its Lua scripts (beside
this file) keep per-request work to a table lookup and a string format, so the load process is
not what limits the figures. Latencies are wrk's (its histogram includes its own correction for
requests delayed behind slow ones).
"""

from __future__ import annotations

import dataclasses
import json
import math
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIGN_SCRIPT = HERE / "sign.lua"
GET_SCRIPT = HERE / "get.lua"
WRK_TIMEOUT = "10s"  # a request slower than this counts as a timeout (still counted if answered)
DRAIN_PATIENCE = 45.0  # seconds allowed after the load for the last answers (the server's own
# limit for a queued signature is 30 s)


class LoadError(RuntimeError):
    """wrk could not run or said something we do not understand."""


@dataclasses.dataclass
class Load:
    requests: int  # answered requests
    seconds: float
    statuses: dict[int, int]  # sign load: answers by status
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]  # p50, p95, p99, max, mean
    sent: int = 0  # sign load: requests sent
    exhausted: bool = False  # sign load: a thread ran out of bodies before its time was up
    status_errors: int = 0  # read load: answers >= 400
    bytes: int = 0  # read load: bytes received
    ok_status: int = 201  # sign load: the answer that acknowledges (202 when mail confirms)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def acknowledged(self) -> int:
        return self.statuses.get(self.ok_status, 0)

    @property
    def acknowledged_per_second(self) -> float:
        return self.acknowledged / self.seconds if self.seconds else 0.0

    @property
    def unanswered(self) -> int:
        return self.sent - self.requests


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _command(url: str, script: Path, seconds: float, connections: int, threads: int) -> list[str]:
    wrk = wrk_path()
    if wrk is None:
        raise LoadError("wrk is not installed (apt-get install wrk)")
    return [
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{math.ceil(seconds)}s",
        "--timeout", WRK_TIMEOUT, "-s", str(script), url,
    ]  # fmt: skip


def _parse(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return dict(json.loads(line.removeprefix("BENCH_RESULT ")))
    raise LoadError(f"wrk gave no result:\n{stdout[-2000:]}")


def _latency(raw: dict) -> dict[str, float]:
    return {k: v / 1000 for k, v in raw.items()}


def sign(
    url: str,
    path: str,
    bodies: Path,
    *,
    seconds: float,
    connections: int,
    threads: int,
    reuse: bool = False,
    ok_status: int = 201,
) -> Load:
    """Post bodies for `seconds`, then wait for every answer; see sign.lua. `reuse` starts the
    bodies over when they run out: only for a server that ignores them (the bare baseline).
    `ok_status` is the answer that acknowledges a signature (202 when it waits for a mail)."""
    args = [str(bodies), str(seconds), str(threads), path, "reuse" if reuse else "once"]
    return _each(url, args, seconds, connections=connections, threads=threads, ok_status=ok_status)


def post_paths(
    url: str, paths: Path, *, seconds: float, connections: int, threads: int, ok_status: int
) -> Load:
    """POST each path of the file `paths` (one a line) once, with an empty form body, as the
    button of a confirmation page does; stop after `seconds` or the last path, and wait for
    every answer (sign.lua's "paths" mode)."""
    args = [str(paths), str(seconds), str(threads), "/", "paths"]  # "/": unused, but a path
    return _each(url, args, seconds, connections=connections, threads=threads, ok_status=ok_status)


def _each(
    url: str, args: list[str], seconds: float, *, connections: int, threads: int, ok_status: int
) -> Load:
    """Run sign.lua with `args`: one request per line of a file, drained before wrk ends."""
    command = _command(url, SIGN_SCRIPT, seconds + DRAIN_PATIENCE, connections, threads)
    process = subprocess.Popen(
        [*command, "--", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    stderr: list[str] = []

    def read_stderr() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            stderr.append(line)
            lines.put(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    # wrk reads the bodies before it starts; its threads then send for `seconds` and drain.
    deadline = time.monotonic() + 30.0 + seconds + DRAIN_PATIENCE
    drained = 0
    while drained < threads and time.monotonic() < deadline and process.poll() is None:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        drained += line.strip() == "drained"
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # wrk then prints its figures and calls done()
    stdout, _ = process.communicate(timeout=60)
    reader.join(5)
    if process.returncode != 0:
        raise LoadError(f"wrk failed ({process.returncode}): {''.join(stderr)[-2000:]}")
    raw = _parse(stdout)
    return Load(
        requests=raw["received"],
        seconds=raw["elapsed_us"] / 1e6,
        statuses={int(k): v for k, v in raw["statuses"].items()},
        socket_errors=raw["errors"],
        latency_ms=_latency(raw["latency_us"]),
        sent=raw["sent"],
        exhausted=bool(raw["exhausted"]),
        ok_status=ok_status,
    )


def read(
    url: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    seconds: float,
    connections: int,
    threads: int,
) -> Load:
    """GET `path` for `seconds` on every connection."""
    extra = [f"{name}: {value}" for name, value in (headers or {}).items()]
    command = [*_command(url, GET_SCRIPT, seconds, connections, threads), "--", path, *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise LoadError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    raw = _parse(done.stdout)
    return Load(
        requests=raw["received"],
        seconds=raw["elapsed_us"] / 1e6,
        statuses={},
        socket_errors=raw["errors"],
        latency_ms=_latency(raw["latency_us"]),
        status_errors=raw["status_errors"],
        bytes=raw["bytes"],
    )
