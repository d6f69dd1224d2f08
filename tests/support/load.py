"""A background sign load for reliability tests: concurrent signers hitting a live server until
stopped, remembering which signatures were acknowledged (201) and how everything else ended."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import httpx

from server.domain.form_tokens import FormTokens
from tests.support import live

SLUG = "save-russian-lgbt-network"


class SignLoad:
    def __init__(
        self,
        base_url: str,
        *,
        concurrency: int = 16,
        slug: str = SLUG,
        extra: dict[str, object] | None = None,
    ) -> None:
        self.base_url = base_url
        self.extra = extra or {}  # more fields for every signature (a consent box ticked)
        self.concurrency = concurrency
        self.slug = slug
        self.acked: list[str] = []  # emails answered 201
        self.outcomes: Counter[str] = Counter()  # status codes, or the transport error's name
        self.retry_after: set[str] = set()  # Retry-After values seen on 429/503
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._minter = FormTokens([live.SECRET], lifetime=7200, min_age=0)

    def start(self) -> SignLoad:
        self._thread.start()
        return self

    def stop(self) -> SignLoad:
        self._stop.set()
        self._thread.join(60)
        return self

    def wait_for(self, acknowledged: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < acknowledged:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.acked)} acknowledged: {self.outcomes}")
            time.sleep(0.02)

    def wait_for_outcome(self, outcome: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        before = self.outcomes[outcome]
        while self.outcomes[outcome] == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {outcome} seen: {self.outcomes}")
            time.sleep(0.02)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30, limits=limits) as c:
            await asyncio.gather(*(self._signer(c) for _ in range(self.concurrency)))

    async def _signer(self, client: httpx.AsyncClient) -> None:
        url = f"/api/petitions/{self.slug}/signatures"
        while not self._stop.is_set():
            person = live.new_signer("L")
            body = {"token": self._minter.issue(self.slug), **person, **self.extra}
            try:
                response = await client.post(url, json=body)
            except httpx.TransportError as exc:
                self.outcomes[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            self.outcomes[str(response.status_code)] += 1
            if response.status_code == 201:
                self.acked.append(person["email"])
            elif response.status_code in (429, 503):
                self.retry_after.add(response.headers.get("retry-after", ""))
                await asyncio.sleep(0.05)
