"""The OpenAPI description of the public API, served at `/openapi.json`.

Written by hand next to the endpoints it describes (it is small); the fuzzing tests run
schemathesis against the live server with it, so a drift between the two fails the suite.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server import __version__


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "petition-widget", "version": __version__},
        "paths": {},
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document(), headers={"Access-Control-Allow-Origin": "*"})


routes = [Route("/openapi.json", openapi, methods=["GET"])]
