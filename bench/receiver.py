"""The webhook bench's receiver: a CRM stand-in on 127.0.0.1 that answers every POST `204` and
counts it, as cheaply as it can (a raw ASGI app on uvicorn with httptools, no access log, a
process of its own so its CPU is counted apart). `GET /count` says how many POSTs arrived and
how many distinct `webhook-id`s; `GET /healthz` answers 200.

    python -m bench.receiver --port P
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn

_seen: set[bytes] = set()
_posts = 0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _posts
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        _posts += 1
        for name, value in scope["headers"]:
            if name == b"webhook-id":
                _seen.add(value)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = json.dumps({"posts": _posts, "ids": len(_seen)}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=False, http="httptools",
                loop="uvloop", log_level="warning")  # fmt: skip


if __name__ == "__main__":
    main()
