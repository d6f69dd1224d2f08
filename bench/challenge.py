"""How long the widget's proof-of-work solver takes in Chromium: `widget/challenge.js` run as a
Web Worker, as the widget runs it, on puzzles made by `domain.challenge` at the shipped size
(`MAX_NUMBER`), plus the worst case (the answer is the last number tried). Also WebCrypto's
`digest` per number, the alternative the solver does not use, for comparison.

    .venv/bin/python -m bench.challenge [--puzzles 20]

Needs Debian's `chromium` and Playwright (the test extras). A low-end phone runs JavaScript
about 8 to 10 times slower than a desktop core: scale the figures by that (docs/challenge.md).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import secrets
import shutil
import statistics
import threading
from pathlib import Path
from typing import Any

from server.domain.challenge import MAX_NUMBER, Challenges, Puzzle
from server.domain.form_tokens import Claims

WIDGET = Path(__file__).resolve().parents[1] / "widget"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
SOLVE = """async ([url, puzzle]) => {
  const worker = new Worker(url);
  const started = performance.now();
  const n = await new Promise(resolve => {
    worker.onmessage = e => resolve(e.data.number);
    worker.postMessage(puzzle);
  });
  worker.terminate();
  return [n, performance.now() - started];
}"""
WEBCRYPTO = """async (count) => {
  const enc = new TextEncoder(), salt = "0123456789abcdef0123456789abcdef";
  const started = performance.now();
  for (let s = 0; s < count; s += 1000) {
    const batch = [];
    for (let n = s; n < s + 1000; n++)
      batch.push(crypto.subtle.digest("SHA-256", enc.encode(salt + n)));
    await Promise.all(batch);
  }
  return count / ((performance.now() - started) / 1000);
}"""


def _serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(WIDGET), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def _worst(maxnumber: int) -> Puzzle:
    salt = secrets.token_hex(16)
    digest = hashlib.sha256(f"{salt}{maxnumber}".encode()).hexdigest()
    return Puzzle(salt, maxnumber, digest, "", maxnumber, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puzzles", type=int, default=20)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    works = Challenges([secrets.token_hex(16)])
    httpd, base = _serve()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        page = browser.new_page()
        page.goto(base)  # a secure context (loopback), as the widget's own origin would be
        times = []
        for _ in range(args.puzzles):
            claims = Claims("bench", "", "en", secrets.token_urlsafe(12), 0)
            puzzle = works.puzzle(claims, 0)
            n, ms = page.evaluate(SOLVE, [base + "challenge.js", puzzle.fields()])
            assert n == puzzle.number, (n, puzzle.number)
            times.append(ms)
        worst = _worst(MAX_NUMBER)
        n, worst_ms = page.evaluate(SOLVE, [base + "challenge.js", worst.fields()])
        assert n == MAX_NUMBER
        webcrypto = page.evaluate(WEBCRYPTO, 100_000)
        browser.close()
    httpd.shutdown()
    print(f"maxnumber {MAX_NUMBER:,}; {args.puzzles} puzzles solved in a Web Worker")
    print(f"  mean {statistics.mean(times):.0f} ms, median {statistics.median(times):.0f} ms,")
    print(f"  slowest {max(times):.0f} ms; worst case (all {MAX_NUMBER:,} tried) {worst_ms:.0f} ms")
    print(
        f"  = {MAX_NUMBER / (worst_ms / 1000):,.0f} hashes/s; WebCrypto digest: {webcrypto:,.0f}/s"
    )


if __name__ == "__main__":
    main()
