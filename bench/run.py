"""The benchmark: every scenario in one run, a report, and a non-zero exit when counts disagree.

For each worker count (1, then 2): the bare baseline under the sign load and the read load;
then our server on a fresh SQLite file under the same sign load, the check that the stored
count equals the signature rows equals the acknowledged answers, and the read loads (the
petition's JSON with and without `If-None-Match`, the widget document). With `--postgres`, the
sign load and the check again on a fresh PostgreSQL database, dropped afterwards. On one
worker of each engine, confirmation by email: the sign load with the petition confirming by
email beside the same load without, the mail job emptying the outbox into an SMTP sink, and
the confirmation of every link, each step checked against the database (`confirmation.py`).
Then the widget's weight. Run `python -m bench --help`; bench/README.md says more.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import resource
import secrets
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import bodies, confirmation, load, profile, servers, weight
from server.domain import sealing as sealing_keys

SECRET = "bench-" + secrets.token_urlsafe(32)
TOKEN_LIFETIME = 7200  # the server's default: pre-issued tokens stay valid for the whole run
SLUG = "save-russian-lgbt-network"  # the example petition
PARTNER = "allies"  # the partner of the sealing loads
SIGN_PATH = f"/api/petitions/{SLUG}/signatures"
BROWSER = {"Accept-Encoding": "gzip, deflate, br"}
READS = {  # name: (path, headers); "If-None-Match" in a name: the current ETag is sent
    "petition JSON": (f"/api/petitions/{SLUG}", BROWSER),
    "petition JSON, If-None-Match (304)": (f"/api/petitions/{SLUG}", BROWSER),
    "live count (the widget's poll)": (f"/widget/{SLUG}/count", BROWSER),
    "live count, If-None-Match (304)": (f"/widget/{SLUG}/count", BROWSER),
    "widget document": (f"/widget/{SLUG}", BROWSER),
}
BODIES_PER_SECOND = 12_000  # pre-issued bodies per second of sign load (more than bare takes)
MAIL_PATIENCE = 900.0  # seconds the mail job gets to empty the outbox after the sign load
CONFIRM_PATIENCE = 600.0  # seconds the confirmation load may take to post every link
PROFILE_SECONDS = 15.0  # seconds of the mail job's drain, and of confirmations, the profile samples
PROFILES = {  # the profiles of confirmation by email: samples file, title
    "sign": ("sign-email-profile.txt", "the sign path, confirmation by email"),
    "mail": ("mail-profile.txt", "the mail job's drain"),
    "confirm": ("confirm-profile.txt", "confirmations (`POST /confirm/{token}`)"),
}


@dataclasses.dataclass
class Confirmation:
    """The confirmation scenario on one engine, one worker: the sign load with the petition
    confirming by email (`on`) beside the same load without (`off`), the mail job's drain of
    the outbox it left, and the load that confirms every link the mails carried."""

    server: str  # "sqlite", "postgresql"
    off: Result
    on: Result
    drain: confirmation.Drain
    confirmed: Result

    def failures(self) -> list[tuple[str, str]]:
        steps = [(r.kind, r) for r in (self.off, self.on, self.confirmed)]
        found = [(f"{self.on.label}, {kind}", r.check) for kind, r in steps if r.failed]
        if self.drain.failed:
            found.append((f"{self.on.label}, mails", self.drain.check))
        return found


@dataclasses.dataclass
class Result:
    server: str  # "bare", "sqlite", "postgresql"
    workers: int
    kind: str  # "sign" or a READS name, or "GET" for the bare read endpoint
    load: load.Load
    cpu: dict[str, float]  # cores used during the load: server, wrk
    rss_kib: dict[str, int] | None = None  # peak RSS per process of the server, by role
    check: str = ""  # the consistency check, said in words
    failed: bool = False

    @property
    def label(self) -> str:
        name = {"bare": "bare Starlette", "sqlite": "SQLite", "postgresql": "PostgreSQL"}
        return f"{name[self.server]}, {self.workers} worker{'s' if self.workers > 1 else ''}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if load.wrk_path() is None:
        print("bench: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    read_seconds = args.read_duration or max(1.0, args.duration / 4)
    count = args.signatures or int(BODIES_PER_SECOND * args.duration)
    with _folder(args.dir) as folder:
        print(f"bench: files in {folder} ({_filesystem(folder)})", flush=True)
        started = time.monotonic()
        body_file = folder / "bodies.jsonl"
        size = bodies.write(body_file, count, secret=SECRET, slug=SLUG, lifetime=TOKEN_LIFETIME)
        print(
            f"bench: {count:,} signatures pre-issued ({size / 1e6:.0f} MB) in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        bench = Bench(args, folder, body_file, read_seconds)
        signing = args.only in (None, "signing")
        confirming = args.only in (None, "confirmation") and args.confirmation_duration
        if args.only in (None, "sealing") and args.sealing_duration:
            bench.sealing("sqlite")
        for workers in args.workers if signing else []:
            bench.bare(workers)
            bench.ours("sqlite", f"sqlite:///{folder / f'sqlite-{workers}w.db'}", workers)
        if confirming:
            on, off = (f"sqlite:///{folder / f'confirm-{name}.db'}" for name in ("email", "none"))
            bench.confirmation("sqlite", off, on)
        if args.postgres:
            for workers in args.workers if signing else []:
                with _postgres_database(args.postgres) as url:
                    bench.ours("postgresql", url, workers, reads=False)
            if confirming:
                with (
                    _postgres_database(args.postgres) as off,
                    _postgres_database(args.postgres) as on,
                ):
                    bench.confirmation("postgresql", off, on)
        sizes = bench.weight()
        profiled = bench.profile(Path(args.profile)) if args.profile else []
        report = _report(bench.results, sizes, args, profiled, bench.confirmations, bench.sealings)
        print("\n" + report, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(_as_json(bench, sizes, args), indent=2) + "\n")
        print(f"bench: done in {time.monotonic() - started:.0f} s")
    failures = [(f"{r.label}, {r.kind}", r.check) for r in bench.results if r.failed]
    failures += [failure for run in bench.confirmations for failure in run.failures()]
    failures += [(f"{r.label}, {r.kind}", r.check) for pair in bench.sealings for r in pair
                 if r.failed]  # fmt: skip
    if failures:
        for what, check in failures:
            print(f"bench: FAILED: {what}: {check}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Sign throughput, count reads and widget weight of petition-widget, "
        "side by side with a bare Starlette endpoint served the same way.",
    )
    add = parser.add_argument
    add("--duration", type=float, default=20.0, help="seconds of sign load per scenario (20)")
    add("--read-duration", type=float, help="seconds of each read load (--duration / 4)")
    add("--workers", type=_counts, default=[1, 2], help="uvicorn worker counts (1,2)")
    add(
        "--postgres",
        metavar="URL",
        help="also run the sign load on PostgreSQL: a server URL "
        "whose user may create databases (a fresh one is made, and dropped afterwards)",
    )
    add(
        "--confirmation-duration",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds of the sign load with confirmation by email, beside the same load "
        "without, on 1 worker of each engine; the mail job then sends every mail it queued "
        "(about 200 a second) and every link is confirmed; 0 to skip (5)",
    )
    add(
        "--only",
        choices=("signing", "confirmation", "sealing"),
        help="run only these loads: the sign and read scenarios, or the confirmation ones "
        "(each carries its own baseline: the bare endpoint, or the same load without "
        "confirmation); the widget's weight is always measured",
    )
    add(
        "--sealing-duration",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds of the sign load with signer data sealed, beside the same load without, "
        "on 1 worker on SQLite, for a petition that counts at once and one that confirms by "
        "email, every form a partner's and every other signer ticking its box; 0 to skip (5)",
    )
    add(
        "--sealing-rounds",
        type=int,
        default=2,
        metavar="N",
        help="pairs of sealing off and on, run alternately, per confirmation mode: on a "
        "machine whose speed drifts, compare each pair (2)",
    )
    add("--connections", type=int, default=50, help="concurrent connections (50)")
    add("--threads", type=int, default=1, help="wrk threads (1)")
    add(
        "--signatures",
        type=int,
        help="signatures to pre-issue (12,000 per second of "
        "--duration); a scenario that uses them all ends early, and says so",
    )
    add(
        "--dir",
        help="where databases, logs and bodies go (default: a temporary folder, "
        "removed afterwards); put it on the disk production would use, not on tmpfs",
    )
    add(
        "--settle",
        type=float,
        default=30.0,
        help="before each load, wait up to this many "
        "seconds for the machine to be quiet (other programs under 0.25 cores; 30)",
    )
    add("--json", metavar="FILE", help="also write the figures as JSON")
    add(
        "--profile",
        metavar="DIR",
        help="afterwards, profile the sign path (1 worker, "
        "SQLite) with py-spy and write the samples and a summary to DIR",
    )
    return parser  # fmt: skip


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("worker counts are positive integers: 1,2")
    return counts


class Bench:
    def __init__(
        self, args: argparse.Namespace, folder: Path, body_file: Path, read_seconds: float
    ) -> None:
        self.args = args
        self.folder = folder
        self.body_file = body_file
        self.read_seconds = read_seconds
        self.results: list[Result] = []
        self.confirmations: list[Confirmation] = []
        self.sealings: list[tuple[Result, Result]] = []  # (off, on)

    def _say(self, result: Result, listed: bool = True) -> None:
        if listed:
            self.results.append(result)
        print(f"  {result.label}, {result.kind}: {_summary(result)}", flush=True)

    def _sign(
        self,
        server: servers.Server,
        reuse: bool = False,
        seconds: float | None = None,
        ok_status: int = 201,
        body_file: Path | None = None,
    ) -> tuple[load.Load, Any]:
        return _measured(
            server,
            lambda: load.sign(
                server.url,
                SIGN_PATH,
                body_file or self.body_file,
                seconds=seconds or self.args.duration,
                connections=self.args.connections,
                threads=self.args.threads,
                reuse=reuse,
                ok_status=ok_status,
            ),
            self.args.settle,
        )

    def _read(
        self, server: servers.Server, path: str, headers: dict[str, str]
    ) -> tuple[load.Load, Any]:
        return _measured(
            server,
            lambda: load.read(
                server.url,
                path,
                headers,
                seconds=self.read_seconds,
                connections=self.args.connections,
                threads=self.args.threads,
            ),
            self.args.settle,
        )

    def bare(self, workers: int) -> None:
        print(f"bench: bare Starlette, {workers} worker(s)", flush=True)
        with servers.bare_server(workers, self.folder / f"bare-{workers}w.log") as server:
            signed, cpu = self._sign(server, reuse=True)  # it ignores them, and is fast
            result = Result("bare", workers, "sign", signed, cpu, server.peak_rss())
            result.check, result.failed = _sign_check(signed, None)
            self._say(result)
            got, cpu = self._read(server, f"/api/petitions/{SLUG}", {})
            self._say(Result("bare", workers, "GET", got, cpu, server.peak_rss()))

    def ours(self, backend: str, url: str, workers: int, reads: bool = True) -> None:
        print(f"bench: petition-widget on {backend}, {workers} worker(s)", flush=True)
        servers.prepare(url)
        log = self.folder / f"{backend}-{workers}w.log"
        with servers.our_server(url, workers, SECRET, log) as server:
            signed, cpu = self._sign(server)
            result = Result(backend, workers, "sign", signed, cpu, server.peak_rss())
            result.check, result.failed = _sign_check(signed, servers.stored_counts(url, SLUG))
            self._say(result)
            if not reads:
                return
            for name, (path, headers) in READS.items():
                if "If-None-Match" in name:
                    answer = servers.get(server.port, path)[1]
                    headers = {**headers, "If-None-Match": answer["etag"]}
                expected = 304 if "If-None-Match" in headers else 200
                status = servers.get(server.port, path, headers)[0]
                got, cpu = self._read(server, path, headers)
                result = Result(backend, workers, name, got, cpu, server.peak_rss())
                if status != expected:
                    result.check, result.failed = f"answered {status}, not {expected}", True
                self._say(result)

    def confirmation(self, backend: str, off_url: str, on_url: str) -> None:
        """Sign with confirmation off, then on (same load, same settings, mail to the sink),
        let the mail job empty the outbox, then confirm every link the sink caught."""
        print(f"bench: confirmation by email on {backend}, 1 worker", flush=True)
        seconds = self.args.confirmation_duration
        with servers.Sink(self.folder, f"{backend}-confirm") as sink:
            assert sink.process is not None
            servers.prepare(off_url, confirmation="none")
            log = self.folder / f"{backend}-confirm-none.log"
            with servers.our_server(off_url, 1, SECRET, log, smtp_port=sink.port) as server:
                signed, cpu = self._sign(server, seconds=seconds)
                off = Result(backend, 1, "sign, confirmation none", signed, cpu, server.peak_rss())
                off.check, off.failed = _sign_check(signed, servers.stored_counts(off_url, SLUG))
                self._say(off, listed=False)

            servers.prepare(on_url, confirmation="email")
            log = self.folder / f"{backend}-confirm-email.log"
            with servers.our_server(on_url, 1, SECRET, log, smtp_port=sink.port) as server:
                assert server.process is not None
                signed, cpu = self._sign(server, seconds=seconds, ok_status=202)
                on = Result(backend, 1, "sign, confirmation email", signed, cpu, server.peak_rss())
                drained = confirmation.drain(
                    on_url, server.process.pid, sink.process.pid, MAIL_PATIENCE
                )
                mails = sink.mails()
                after = confirmation.stored(on_url, SLUG)
                on.check, on.failed = confirmation.sign_check(signed, after, len(mails))
                self._say(on, listed=False)
                drained.check, drained.failed = confirmation.mail_check(drained, mails, after)
                print(f"  {on.label}, mails: {_drain_summary(drained)}", flush=True)

                paths = self.folder / f"{backend}-confirm-paths.txt"
                links = confirmation.write_paths(confirmation.caught_links(mails), paths)
                done, cpu = self._confirm(server, paths)
                confirmed = Result(backend, 1, "confirm links", done, cpu, server.peak_rss())
                confirmed.check, confirmed.failed = confirmation.confirm_check(
                    done, links, confirmation.stored(on_url, SLUG), signed.acknowledged
                )
                self._say(confirmed, listed=False)
        self.confirmations.append(Confirmation(backend, off, on, drained, confirmed))

    def sealing(self, backend: str) -> None:
        """Sign without sealing, then with, in alternate pairs (`--sealing-rounds`), on a
        petition that counts at once and on one that confirms by email (its mail job sending
        to the sink meanwhile, as in production): the sealed runs seal each signer for a fresh
        key pair on the writer's thread, and every consenting signer again for the partner's
        key (every form is the partner's, every other signer ticks its box)."""
        print(f"bench: sealed signer data on {backend}, 1 worker", flush=True)
        seconds = self.args.sealing_duration
        public, _ = sealing_keys.new_key_pair()
        partner_public, _ = sealing_keys.new_key_pair()
        body_file = self.folder / "bodies-partner.jsonl"
        bodies.write(body_file, int(BODIES_PER_SECOND * seconds), secret=SECRET, slug=SLUG,
                     lifetime=TOKEN_LIFETIME, partner=PARTNER)  # fmt: skip
        with servers.Sink(self.folder, f"{backend}-sealing") as sink:
            for round_ in range(1, self.args.sealing_rounds + 1):
                for mode, status in (("none", 201), ("email", 202)):
                    pair = []
                    for key, name in (("", "off"), (public, "on")):
                        url = f"sqlite:///{self.folder / f'seal-{mode}-{name}-{round_}.db'}"
                        servers.prepare(url, confirmation=mode, partner=(PARTNER, partner_public))
                        log = self.folder / f"{backend}-sealing-{mode}-{name}-{round_}.log"
                        with servers.our_server(
                            url, 1, SECRET, log, sealing_key=key, smtp_port=sink.port
                        ) as server:
                            signed, cpu = self._sign(
                                server, seconds=seconds, ok_status=status, body_file=body_file
                            )
                        kind = f"sign {mode}, sealing {name}, pair {round_}"
                        r = Result(backend, 1, kind, signed, cpu, server.peak_rss())
                        r.check, r.failed = _sealing_check(url, signed, mode, sealed=bool(key))
                        self._say(r, listed=False)
                        pair.append(r)
                    self.sealings.append((pair[0], pair[1]))

    def _confirm(
        self, server: servers.Server, paths: Path, seconds: float = CONFIRM_PATIENCE
    ) -> tuple[load.Load, Any]:
        return _measured(
            server,
            lambda: load.post_paths(
                server.url,
                paths,
                seconds=seconds,
                connections=self.args.connections,
                threads=self.args.threads,
                ok_status=200,
            ),
            self.args.settle,
        )

    def weight(self) -> list[weight.Item]:
        url = f"sqlite:///{self.folder / 'weight.db'}"
        servers.prepare(url)
        with servers.our_server(url, 1, SECRET, self.folder / "weight.log") as server:
            return weight.measure(server.port, SLUG)

    def profile(self, out: Path) -> list[profile.Summary]:
        print("bench: profiling the sign path (1 worker, SQLite) with py-spy", flush=True)
        url = f"sqlite:///{self.folder / 'profile.db'}"
        servers.prepare(url)
        out.mkdir(parents=True, exist_ok=True)
        with servers.our_server(url, 1, SECRET, self.folder / "profile.log") as server:
            assert server.process is not None
            with profile.recording(server.process.pid, out, self.args.duration):
                signed, cpu = self._sign(server)
        result = Result("sqlite", 1, "sign, under py-spy", signed, cpu)
        result.check, result.failed = _sign_check(signed, servers.stored_counts(url, SLUG))
        self._say(result)
        summaries = [profile.summarise(out)]
        if self.args.confirmation_duration:
            summaries += self._profile_confirmation(out)
        return summaries

    def _profile_confirmation(self, out: Path) -> list[profile.Summary]:
        """Sample the sign load with confirmation by email, the first `PROFILE_SECONDS` of the
        mail job's drain, then (the sink holding the mails left, so the job idles) as long of
        confirmations, with links of unsent mails read from the outbox. Figures under py-spy
        are printed, not reported: py-spy takes a share of the cores."""
        print("bench: profiling confirmation by email (1 worker, SQLite) with py-spy", flush=True)
        url = f"sqlite:///{self.folder / 'profile-email.db'}"
        servers.prepare(url, confirmation="email")
        seconds = self.args.confirmation_duration
        log = self.folder / "profile-email.log"
        with (
            servers.Sink(self.folder, "profile") as sink,
            servers.our_server(url, 1, SECRET, log, smtp_port=sink.port) as server,
        ):
            assert server.process is not None and sink.process is not None
            pid = server.process.pid
            with profile.recording(pid, out, seconds, PROFILES["sign"][0]):
                signed, cpu = self._sign(server, seconds=seconds, ok_status=202)
            kind = "sign, confirmation email, under py-spy"
            self._say(Result("sqlite", 1, kind, signed, cpu), listed=False)
            with profile.recording(pid, out, PROFILE_SECONDS, PROFILES["mail"][0]):
                drained = confirmation.drain(url, pid, sink.process.pid, PROFILE_SECONDS)
            sink.hold()
            print(f"  SQLite, 1 worker, mails, under py-spy: {_drain_summary(drained)}", flush=True)
            tokens = confirmation.caught_links(sink.mails()) + confirmation.unsent_links(
                url, servers.email_hash_key(SECRET)
            )
            paths = self.folder / "profile-confirm-paths.txt"
            confirmation.write_paths(sorted(set(tokens)), paths)
            with profile.recording(pid, out, PROFILE_SECONDS, PROFILES["confirm"][0]):
                done, cpu = self._confirm(server, paths, PROFILE_SECONDS)
            self._say(Result("sqlite", 1, "confirm links, under py-spy", done, cpu), listed=False)
        return [profile.summarise(out, samples=f, title=t) for f, t in PROFILES.values()]


def _measured(
    server: servers.Server, run: Callable[[], load.Load], settle: float
) -> tuple[load.Load, Any]:
    """Run a load; also return the CPU (in cores) used meanwhile by the server, by wrk, and by
    everything else on the machine (other programs compete for the same 2 cores)."""
    assert server.process is not None
    if settle > 0:
        servers.wait_until_quiet(settle)
    before = servers.cpu_seconds(server.process.pid)
    wrk_before = _children_cpu()
    machine_before = servers.machine_busy_seconds()
    started = time.monotonic()
    result = run()
    elapsed = time.monotonic() - started
    machine = servers.machine_busy_seconds() - machine_before
    used = servers.cpu_seconds(server.process.pid) - before
    wrk_used = _children_cpu() - wrk_before
    return result, {
        "server": used / elapsed,
        "wrk": wrk_used / elapsed,
        "other": max(0.0, machine - used - wrk_used) / elapsed,
    }


def _children_cpu() -> float:
    """CPU time of the finished child processes this process waited for (wrk, py-spy)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sealing_check(url: str, signed: load.Load, mode: str, *, sealed: bool) -> tuple[str, bool]:
    """After a sealing load: the rows are all there (counted, or waiting for confirmation),
    and when sealed every one has its box, none a clear name or email, and every consenting
    signer (every other one) a partner copy."""
    table = "signatures" if mode == "none" else "pending_signatures"
    if mode == "none":
        check, failed = _sign_check(signed, servers.stored_counts(url, SLUG))
    else:
        rows = servers.sealed_counts(url, table)
        failed = sum(rows[:2]) < signed.acknowledged if sealed else rows[0] != signed.acknowledged
        check = f"{'MISMATCH: ' if failed else ''}{signed.acknowledged:,} acknowledged, waiting"
    if failed or not sealed:
        return check, failed
    clear, boxes, copies = servers.sealed_counts(url, table)
    if clear:
        return f"MISMATCH: {clear:,} rows in clear; {check}", True
    if abs(copies - boxes / 2) > 1:
        return f"MISMATCH: {copies:,} partner copies of {boxes:,}; {check}", True
    return f"{check}; all {boxes:,} sealed, {copies:,} partner copies", False


def _sign_check(signed: load.Load, stored: tuple[int, int] | None) -> tuple[str, bool]:
    """Words for the consistency check, and whether it failed."""
    problems = []
    refused = {s: n for s, n in signed.statuses.items() if 400 <= s < 500}
    if refused:
        problems.append(f"the server refused requests ({_statuses(refused)}): the bench is broken")
    if signed.unanswered:
        problems.append(f"{signed.unanswered:,} requests never answered")
    if not signed.acknowledged:
        problems.append("nothing acknowledged")
    if stored is None:
        return ("; ".join(problems) or "ok"), bool(problems)
    counted, rows = stored
    words = f"counter {counted:,}, rows {rows:,}, acknowledged {signed.acknowledged:,}"
    if not counted == rows == signed.acknowledged:
        problems.insert(0, f"MISMATCH: {words}")
    if problems:
        return "; ".join(problems), True
    return f"ok: {words}", False


# --- Report ------------------------------------------------------------------------------------


def _statuses(counts: dict[int, int]) -> str:
    return ", ".join(f"{status}×{n:,}" for status, n in sorted(counts.items()))


def _errors(result: Result) -> str:
    parts = []
    if result.load.statuses:  # a sign or confirm load, which counts answers by status
        others = {s: n for s, n in result.load.statuses.items() if s != result.load.ok_status}
        if others:
            parts.append(_statuses(others))
    elif result.load.status_errors:
        parts.append(f"≥400×{result.load.status_errors:,}")
    parts += [f"{kind} {n:,}" for kind, n in result.load.socket_errors.items() if n]
    return ", ".join(parts) or "none"


def _rss(rss: dict[str, int] | None) -> str:
    """Peak RSS in MB: the server's one process, or the sum of its processes and each."""
    if not rss:
        return "-"
    if len(rss) == 1:
        return f"{next(iter(rss.values())) / 1024:.0f} MB"
    each = ", ".join(f"{role} {kib / 1024:.0f}" for role, kib in rss.items())
    return f"{sum(rss.values()) / 1024:.0f} MB ({each})"


def _cpu_per_request(result: Result) -> str:
    """Server CPU time per answered request: unlike requests/s, barely moved by other programs
    taking turns on the cores (it still grows when they evict the caches)."""
    rate = result.load.per_second
    return f"{result.cpu['server'] / rate * 1e6:,.0f}" if rate else "-"


def _cpu(cpu: dict[str, float]) -> str:
    return f"{cpu['server']:.2f} / {cpu['wrk']:.2f} / {cpu['other']:.2f}"


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _summary(result: Result) -> str:
    lat = result.load.latency_ms
    rate = (
        f"{result.load.acknowledged_per_second:,.0f} signatures/s"
        if result.kind.startswith("sign") and result.server != "bare"
        else f"{result.load.acknowledged_per_second:,.0f} confirmations/s"
        if result.kind.startswith("confirm links")
        else f"{result.load.per_second:,.0f} requests/s"
    )
    text = (
        f"{rate}, p50 {_ms(lat['p50'])} ms, p99 {_ms(lat['p99'])} ms, errors: {_errors(result)}, "
        f"CPU cores: server {result.cpu['server']:.2f}, wrk {result.cpu['wrk']:.2f}, "
        f"other {result.cpu['other']:.2f}"
    )
    if result.load.exhausted and not result.kind.startswith("confirm links"):  # posts them all
        text += " (ran out of pre-issued bodies: ended early)"
    if result.check:
        text += f"; check {result.check}"
    return text


def _drain_summary(drained: confirmation.Drain) -> str:
    text = (
        f"{drained.per_second:,.0f} mails/s ({drained.sent:,} in {drained.seconds:.1f} s), "
        f"CPU cores: server {drained.cpu['server']:.2f}, sink {drained.cpu['sink']:.2f}, "
        f"other {drained.cpu['other']:.2f}"
    )
    return text + (f"; check {drained.check}" if drained.check else "")


def _baseline(results: list[Result], workers: int, kind: str) -> float:
    for r in results:
        if r.server == "bare" and r.workers == workers and r.kind == kind:
            return r.load.per_second
    return 0.0


def _report(
    results: list[Result],
    sizes: list[weight.Item],
    args: argparse.Namespace,
    profiled: Sequence[profile.Summary] = (),
    confirmations: Sequence[Confirmation] = (),
    sealings: Sequence[tuple[Result, Result]] = (),
) -> str:
    lines = [
        f"## Sign load: {args.connections} connections, {args.duration:g} s per scenario, "
        "each request a new signer with a fresh token",
        "",
        "| Server | Acknowledged/s | Requests/s | Ours/bare | p50 ms | p95 ms | p99 ms | "
        "Errors | Server CPU µs/request | CPU cores: server / wrk / other | Peak RSS | Counts |",
        "|---|--:|--:|--:|--:|--:|--:|---|--:|---|---|---|",
    ]
    for r in results:
        if not r.kind.startswith("sign"):
            continue
        bare = _baseline(results, r.workers, "sign")
        ratio = "" if r.server == "bare" else f"{r.load.acknowledged_per_second / bare:.0%}"
        lat = r.load.latency_ms
        label = r.label + (" (py-spy)" if "py-spy" in r.kind else "")
        lines.append(
            f"| {label} | {r.load.acknowledged_per_second:,.0f} | {r.load.per_second:,.0f} | "
            f"{ratio} | {_ms(lat['p50'])} | {_ms(lat['p95'])} | {_ms(lat['p99'])} | "
            f"{_errors(r)} | {_cpu_per_request(r)} | {_cpu(r.cpu)} | {_rss(r.rss_kib)} | "
            f"{r.check if r.server != 'bare' else '-'} |"
        )
    lines += [
        "",
        f"## Reads: {args.connections} connections, "
        f"{args.read_duration or max(1.0, args.duration / 4):g} s per scenario",
        "",
        "| Server | Request | Requests/s | Ours/bare | p50 ms | p99 ms | Bytes/answer | Errors | "
        "Server CPU µs/request | CPU cores: server / wrk / other |",
        "|---|---|--:|--:|--:|--:|--:|---|--:|---|",
    ]
    for r in results:
        if r.kind.startswith("sign"):
            continue
        bare = _baseline(results, r.workers, "GET")
        ratio = "" if r.server == "bare" else f"{r.load.per_second / bare:.0%}"
        lat = r.load.latency_ms
        per = r.load.bytes / r.load.requests if r.load.requests else 0
        kind = "trivial JSON" if r.kind == "GET" else r.kind
        lines.append(
            f"| {r.label} | {kind} | {r.load.per_second:,.0f} | {ratio} | {_ms(lat['p50'])} | "
            f"{_ms(lat['p99'])} | {per:,.0f} | {_errors(r) if not r.failed else r.check} | "
            f"{_cpu_per_request(r)} | {_cpu(r.cpu)} |"
        )
    if confirmations:
        lines += ["", *_confirmation_tables(confirmations, args)]
    if sealings:
        lines += ["", *_sealing_table(sealings, args)]
    lines += ["", weight.table(sizes)]
    for summary in profiled:
        lines += ["", summary.text]
    return "\n".join(lines)


def _sealing_table(
    sealings: Sequence[tuple[Result, Result]], args: argparse.Namespace
) -> list[str]:
    lines = [
        f"## Sealed signer data: 1 worker, {args.connections} connections, "
        f"{args.sealing_duration:g} s of sign load without sealing, then with, in alternate "
        "pairs; every form a partner's, every other signer ticking its box",
        "",
        "| Server | Sealing | Acknowledged/s | On/off | p50 ms | p99 ms | Errors | "
        "Server CPU µs/request | CPU cores: server / wrk / other | Counts |",
        "|---|---|--:|--:|--:|--:|---|--:|---|---|",
    ]
    for off, on in sealings:
        base = off.load.acknowledged_per_second
        for r, name in ((off, "off"), (on, "on")):
            lat = r.load.latency_ms
            ratio = f"{r.load.acknowledged_per_second / base:.0%}" if r is on and base else ""
            lines.append(
                f"| {r.kind.replace(f', sealing {name}', '')}, {r.label} | {name} | "
                f"{r.load.acknowledged_per_second:,.0f} | {ratio} | "
                f"{_ms(lat['p50'])} | {_ms(lat['p99'])} | {_errors(r)} | "
                f"{_cpu_per_request(r)} | {_cpu(r.cpu)} | {r.check} |"
            )
    return lines


def _confirmation_tables(
    confirmations: Sequence[Confirmation], args: argparse.Namespace
) -> list[str]:
    lines = [
        f"## Confirmation by email: 1 worker, {args.connections} connections, "
        f"{args.confirmation_duration:g} s of sign load, then every mail, then every link",
        "",
        "| Server | Confirmation | Acknowledged/s | Email/none | p50 ms | p95 ms | p99 ms | "
        "Errors | Server CPU µs/request | CPU cores: server / wrk / other | Peak RSS | Counts |",
        "|---|---|--:|--:|--:|--:|--:|---|--:|---|---|---|",
    ]
    for run in confirmations:
        off = run.off.load.acknowledged_per_second
        for r, policy in ((run.off, "none (201)"), (run.on, "email (202)")):
            lat = r.load.latency_ms
            ratio = f"{r.load.acknowledged_per_second / off:.0%}" if r is run.on and off else ""
            lines.append(
                f"| {r.label} | {policy} | {r.load.acknowledged_per_second:,.0f} | {ratio} | "
                f"{_ms(lat['p50'])} | {_ms(lat['p95'])} | {_ms(lat['p99'])} | {_errors(r)} | "
                f"{_cpu_per_request(r)} | {_cpu(r.cpu)} | {_rss(r.rss_kib)} | {r.check} |"
            )
    lines += [
        "",
        "| Server | Step | Per second | How many | Seconds | p50 ms | p99 ms | "
        "Server CPU µs each | CPU cores: server / wrk or sink / other | Check |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    for run in confirmations:
        d = run.drain
        cpu = f"{d.cpu['server']:.2f} / {d.cpu['sink']:.2f} / {d.cpu['other']:.2f}"
        lines.append(
            f"| {run.on.label} | mails: outbox to SMTP sink | {d.per_second:,.0f} | {d.sent:,} | "
            f"{d.seconds:.1f} | - | - | {d.cpu_per_mail_us('server'):,.0f} | {cpu} | {d.check} |"
        )
        c = run.confirmed
        lat = c.load.latency_ms
        lines.append(
            f"| {c.label} | confirmations: `POST /confirm/{{token}}` | "
            f"{c.load.acknowledged_per_second:,.0f} | {c.load.acknowledged:,} | "
            f"{c.load.seconds:.1f} | {_ms(lat['p50'])} | {_ms(lat['p99'])} | "
            f"{_cpu_per_request(c)} | {_cpu(c.cpu)} | {c.check} |"
        )
    return lines


def _result_json(r: Result) -> dict[str, Any]:
    return {
        "server": r.server,
        "workers": r.workers,
        "kind": r.kind,
        "per_second": r.load.per_second,
        "acknowledged_per_second": r.load.acknowledged_per_second,
        "load": dataclasses.asdict(r.load),
        "cpu_cores": r.cpu,
        "peak_rss_kib": r.rss_kib,
        "check": r.check,
        "failed": r.failed,
    }


def _as_json(bench: Bench, sizes: list[weight.Item], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "arguments": {k: v for k, v in vars(args).items() if k != "postgres"},
        "postgres": bool(args.postgres),
        "results": [_result_json(r) for r in bench.results],
        "confirmation": [
            {
                "server": run.server,
                "sign_none": _result_json(run.off),
                "sign_email": _result_json(run.on),
                "mails": {
                    **dataclasses.asdict(run.drain),
                    "sent": run.drain.sent,
                    "per_second": run.drain.per_second,
                },
                "confirm": _result_json(run.confirmed),
            }
            for run in bench.confirmations
        ],
        "sealing": [
            {"off": _result_json(off), "on": _result_json(on)} for off, on in bench.sealings
        ],
        "weight": [dataclasses.asdict(item) for item in sizes],
    }


# --- Places --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _folder(path: str | None) -> Iterator[Path]:
    if path:
        folder = Path(path).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="petition-bench-", dir=os.environ.get("TMPDIR")) as t:
        yield Path(t)


def _filesystem(folder: Path) -> str:
    """The type of the file system holding `folder`: fsync on tmpfs costs nothing."""
    best, kind = "", "unknown file system"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and str(folder).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    if kind in ("tmpfs", "ramfs"):
        return f"{kind}: WARNING, commits are not durable here and look faster than on a disk"
    return kind


@contextlib.contextmanager
def _postgres_database(admin_url: str) -> Iterator[str]:
    import asyncpg

    name = "pw_bench_" + secrets.token_hex(6)

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        parts = urllib.parse.urlsplit(admin_url)
        yield urllib.parse.urlunsplit(parts._replace(path="/" + name))
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
