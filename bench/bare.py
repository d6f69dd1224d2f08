"""The bare baseline: trivial Starlette endpoints served exactly as `petition-widget serve`
serves ours (uvicorn, the same options, no access log), so that ours/bare says what our own
code costs on this stack and machine.

The routes have our paths, so the very same load runs against both. The sign endpoint reads
the body (as any POST endpoint must) and answers a constant `201`; the read endpoint answers a
constant small JSON object. Run: `python -m bench.bare --port 8001 --workers 1`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.cli import UVICORN_OPTIONS


async def sign(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "signed", "signatures": 1}, 201)


async def read(request: Request) -> JSONResponse:
    return JSONResponse({"slug": request.path_params["slug"], "signatures": 1})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/petitions/{slug}/signatures", sign, methods=["POST"]),
        Route("/api/petitions/{slug}", read, methods=["GET"]),
        Route("/widget/{slug}", read, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    uvicorn.run(
        "bench.bare:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
        **UVICORN_OPTIONS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
