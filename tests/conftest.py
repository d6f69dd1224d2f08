"""Shared fixtures: a fresh database per backend (SQLite file, PostgreSQL database), a live
server on it, and the session-wide check that no signer's data reached a server log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings

from tests.support import backends, live

# Property tests: bounded, and not failed by a slow first draw on a busy 2-core machine.
settings.register_profile(
    "petition-widget", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("petition-widget")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may be skipped: a skipped PostgreSQL or browser test is a failure."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if backends.REQUIRE_ALL and skipped and reporter is not None:
        reporter.write_line(
            f"FAILED: {len(skipped)} tests were skipped, and PETITION_WIDGET_REQUIRE_ALL=1",
            red=True,
        )
        session.exitstatus = 1


@pytest.fixture(scope="session", autouse=True)
def no_signer_data_in_logs() -> Iterator[None]:
    yield
    leaks = []
    for path in live.LOGS:
        if not path.exists():
            continue
        text = path.read_text(errors="replace").lower()
        for name, email in live.SIGNERS:
            for secret in (name, email):
                if secret.lower() in text:
                    leaks.append(f"{path.name}: {secret}")
    assert not leaks, f"signer data found in server logs: {leaks[:5]}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[backends.PostgresDatabases]:
    databases = backends.PostgresDatabases(backends.postgres_admin_url())
    yield databases
    databases.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return backends.sqlite_url(tmp_path)
    postgres: backends.PostgresDatabases = request.getfixturevalue("postgres")
    return postgres.create()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[live.LiveServer]:
    """A live server with the example petition, shared by a module's tests, on each backend."""
    folder = tmp_path_factory.mktemp("server")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    live.prepare(url)
    with live.LiveServer(url, folder) as running:
        yield running


@pytest.fixture
def client(server: live.LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c
