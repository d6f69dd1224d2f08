"""The ASGI application: routes, start-up and shutdown, and the answers to errors.

`create_app(services)` builds it around the services that `server.wiring` builds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.store.engine import describe, is_unavailable
from server.web import (
    admin,
    admin_abuse,
    api,
    badge,
    demo,
    link_pages,
    openapi,
    responses,
    share_page,
    widget,
)
from server.web.services import Services
from server.web.submission import STORAGE_RETRY_AFTER

logger = logging.getLogger("petition_widget")

_NOSNIFF = (b"x-content-type-options", b"nosniff")
JOBS_GRACE = 5.0  # seconds background jobs get to finish their step at shutdown
STARTUP_PATIENCE = 30.0  # seconds to keep trying to reach the database at start-up


def create_app(services: Services) -> ASGIApp:
    settings = services.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await _open_storage(services)
        await services.limit_store.run()  # this period's key, before the first request
        await services.writer.start()
        await services.jobs.start()
        try:
            yield
        finally:
            # uvicorn calls this after in-flight requests have finished: background jobs
            # finish (or hand back) what they hold, the writer commits whatever is still
            # queued, and only then is the database closed.
            await services.jobs.stop(JOBS_GRACE)
            await services.writer.close()
            await services.storage.disconnect()

    routes: list[BaseRoute] = [
        *api.routes,
        *widget.routes,
        *openapi.routes,
        *badge.routes,
        *admin.routes,
        *admin_abuse.routes,
        *link_pages.routes,
        *share_page.routes,
    ]
    if settings.demo:
        routes += demo.routes
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.services = services
    app.state.petition_documents = api.PetitionDocuments()
    app.state.admin = admin.AdminState.build(settings)
    return _Guard(app)


async def _open_storage(services: Services) -> None:
    """Connect, migrate and load petitions, retrying for a while: a database that starts a few
    seconds after us (a reboot, a container) should not need a human."""
    deadline = asyncio.get_running_loop().time() + STARTUP_PATIENCE
    while True:
        try:
            await services.storage.connect()
            await services.storage.migrate(services.email_hasher)
            await services.registry.refresh()
            return
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                logger.error("cannot open the database: %s", describe(exc))
                raise
            logger.warning("database not ready (%s); retrying", describe(exc))
            with contextlib.suppress(Exception):
                await services.storage.disconnect()
            await asyncio.sleep(1.0)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    headers = dict(exc.headers or {})
    if request.url.path.startswith("/api/") or request.url.path == "/healthz":
        response = responses.error_response(exc.status_code, code)
        response.headers.update(headers)
        return response
    if exc.status_code == 404:
        return responses.not_found(request)
    return Response(code.replace("_", " "), exc.status_code, headers, media_type="text/plain")


async def _server_error(request: Request, exc: Exception) -> Response:
    if is_unavailable(exc):  # the database is down or hung, not our code: try later
        return responses.error_response(503, "storage_unavailable", retry_after=STORAGE_RETRY_AFTER)
    return responses.error_response(500, "server_error")


class _Guard:
    """The outermost layer: an error that escapes everything else is logged without its message
    (database errors can quote a signer's email) and never reaches uvicorn, which would log it
    whole."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # Every answer, said once here: never sniffed into something else.
                # (Starlette makes this message anew for each answer; its header list may be
                # shared by prebuilt answers, so it is copied, not appended to.)
                message["headers"] = [*message.get("headers", ()), _NOSNIFF]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if scope["type"] == "lifespan":
                raise
            if is_unavailable(exc):  # answered 503 already; the fault itself is no bug of ours
                logger.warning("storage unavailable in %s: %s", _loggable(scope), describe(exc))
                return
            frames = "".join(traceback.format_tb(exc.__traceback__))
            logger.error("unexpected %s in %s\n%s", describe(exc), _loggable(scope), frames)
            if not started and scope["type"] == "http":
                response = responses.error_response(500, "server_error")
                await response(scope, receive, watch)


def _loggable(scope: Scope) -> str:
    """A request's path as logs may hold it: the secret of a link in a mail is left out."""
    path = str(scope.get("path", ""))
    for prefix in ("/confirm/", "/withdraw/"):
        if path.startswith(prefix):
            return prefix + "…"
    return path
