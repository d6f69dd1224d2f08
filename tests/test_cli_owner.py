"""The owner's commands: keys (create-owner, list, revoke), partners (add, list, key), and the
dashboard links of `petition-widget demo`. Run in-process on both engines, except the demo,
which runs as a newcomer runs it."""

from __future__ import annotations

import asyncio
import logging.config
import re
import time
from pathlib import Path
from typing import Protocol, cast

import httpx
import pytest

from server import cli
from server.domain import access, access_keys, i18n
from server.domain.placeholder import Space
from server.store.storage import Storage
from server.web import auth
from tests.support import live, petitions

SLUG = "save-russian-lgbt-network"
KEY = re.compile(r"\b(pw[op]_[a-z0-9]{12}_[A-Za-z0-9]{32})\b")


class Run(Protocol):
    url: str

    def __call__(self, *args: str) -> tuple[int, str, str]: ...


@pytest.fixture
def run(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    """`petition-widget ARGS --database-url URL` in this process: (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEYS", live.SECRET)
    monkeypatch.setattr(logging.config, "dictConfig", lambda config: None)
    live.prepare(database_url)

    def runner(*args: str) -> tuple[int, str, str]:
        code = cli.main([*args, "--database-url", database_url])
        out = capsys.readouterr()
        return code, out.out, out.err

    runner.url = database_url  # type: ignore[attr-defined]
    return cast(Run, runner)


def principal(url: str, text: str) -> access.Principal | None:
    async def check() -> access.Principal | None:
        storage = Storage(url)
        await storage.connect()
        try:
            return await auth.authenticate(storage, text)
        finally:
            await storage.disconnect()

    return asyncio.run(check())


def test_create_owner_key_shows_it_once_and_it_works(run: Run) -> None:
    code, out, _ = run("keys", "create-owner", "--label", "Campaign lead")
    assert code == 0
    found = KEY.findall(out)
    assert len(found) == 1 and found[0].startswith("pwo_")
    owner = principal(run.url, found[0])
    assert owner is not None and owner.is_owner and owner.petition_id is None
    assert "/admin/login" in out

    code, out, _ = run("keys", "list")
    assert code == 0
    assert owner.key_id in out and "Campaign lead" in out and "every petition" in out
    assert found[0] not in out and found[0].split("_")[2] not in out  # never the secret again


def test_owner_key_for_one_petition(run: Run) -> None:
    code, out, _ = run("keys", "create-owner", "--petition", SLUG)
    assert code == 0
    scoped = principal(run.url, KEY.findall(out)[0])
    assert scoped is not None and scoped.petition_slug == SLUG
    code, _, err = run("keys", "create-owner", "--petition", "no-such-petition")
    assert code == 1 and "no petition 'no-such-petition'" in err


def test_revoke_stops_a_key(run: Run) -> None:
    text = KEY.findall(run("keys", "create-owner")[1])[0]
    key = access_keys.parse(text)
    assert key is not None
    key_id = key.id
    code, out, _ = run("keys", "revoke", key_id)
    assert code == 0 and f"Revoked key {key_id}" in out
    assert principal(run.url, text) is None
    code, out, _ = run("keys", "revoke", text)  # the whole key works too
    assert code == 0 and "already revoked" in out
    assert f"revoked {time.strftime('%Y-%m-%d', time.gmtime())}" in run("keys", "list")[1]
    assert run("keys", "revoke", "zzzzzzzzzzzz")[0] == 1
    assert run("keys", "revoke", "not a key")[0] == 1


def test_add_partner_prints_its_snippet_and_key(run: Run) -> None:
    code, out, _ = run("partners", "add", SLUG, "--name", "Open Doors Network",
                       "--base-url", "https://petitions.example.org")  # fmt: skip
    assert code == 0
    assert (
        '<script async src="https://petitions.example.org/embed.js" '
        f'data-petition="{SLUG}" data-partner="open-doors-network"></script>'
    ) in out
    # In its placeholder, sized for this petition (its tallest language, as no data-lang) with
    # the partner's consent box, which the widget adds for its code.
    assert '<div class="petition-widget-space"' in out
    example = petitions.example()
    langs = [lang for lang in sorted(i18n.LANGUAGES) if lang in example.languages]
    space = Space.tallest(example, langs, partner="Open Doors Network")
    assert space.narrow > Space.tallest(example, langs).narrow
    assert f"min-height:{space.narrow}px;" in out
    found = KEY.findall(out)
    assert len(found) == 1 and found[0].startswith("pwp_")
    partner = principal(run.url, found[0])
    assert partner is not None and partner.partner_code == "open-doors-network"
    assert partner.petition_slug == SLUG and not partner.is_owner

    code, out, _ = run("partners", "list")
    assert code == 0
    line = next(line for line in out.splitlines() if "open-doors-network" in line)
    assert line.split()[:4] == [SLUG, "open-doors-network", "0", "1"]
    assert found[0] not in out


def test_add_partner_refusals(run: Run) -> None:
    assert run("partners", "add", SLUG, "--name", "NGO", "--code", "ngo")[0] == 0
    code, _, err = run("partners", "add", SLUG, "--name", "Another", "--code", "ngo")
    assert code == 1 and "already used" in err
    code, _, err = run("partners", "add", SLUG, "--name", "Bad", "--code", "-bad code-")
    assert code == 1 and "--code must be" in err
    code, _, err = run("partners", "add", "nope", "--name", "NGO")
    assert code == 1 and "no petition 'nope'" in err
    assert run("partners", "add", SLUG, "--name", "   ")[0] == 1


def test_a_partner_gets_a_new_key_and_the_old_one_can_go(run: Run) -> None:
    first = KEY.findall(run("partners", "add", SLUG, "--name", "NGO A", "--code", "ngo-a")[1])[0]
    code, out, _ = run("partners", "key", SLUG, "ngo-a")
    assert code == 0
    second = KEY.findall(out)[0]
    first_key = access_keys.parse(first)
    assert first_key is not None
    assert run("keys", "revoke", first_key.id)[0] == 0
    assert principal(run.url, first) is None
    assert principal(run.url, second) is not None
    assert run("partners", "key", SLUG, "nobody")[0] == 1


def test_demo_keys_replace_the_last_runs(database_url: str) -> None:
    live.prepare(database_url)

    async def twice() -> list[tuple[access_keys.Key, access_keys.Key]]:
        storage = Storage(database_url)
        await storage.connect()
        try:
            return [await cli.demo_keys(storage, SLUG) for _ in range(2)]
        finally:
            await storage.disconnect()

    (old_owner, old_partner), (owner, partner) = asyncio.run(twice())
    assert principal(database_url, old_owner.text) is None
    assert principal(database_url, old_partner.text) is None
    new_owner = principal(database_url, owner.text)
    assert new_owner is not None and new_owner.is_owner
    new_partner = principal(database_url, partner.text)
    assert new_partner is not None and new_partner.partner_code == cli.DEMO_PARTNER[0]


def test_demo_prints_working_dashboard_links(tmp_path: Path) -> None:
    with live.demo(tmp_path) as (base, log):
        links = dict(
            re.findall(
                r"(owner's dashboard|partner's view).*?/admin/login#key=(\S+)", log.read_text()
            )
        )
        with httpx.Client(base_url=base) as c:
            signed_in = c.post("/admin/login", data={"key": links["owner's dashboard"]})
            assert signed_in.status_code == 303 and c.get("/admin").status_code == 200
        with httpx.Client(base_url=base) as c:
            signed_in = c.post("/admin/login", data={"key": links["partner's view"]})
            page = signed_in.headers["location"]
            assert page == f"/admin/petitions/{SLUG}/partners/{cli.DEMO_PARTNER[0]}"
            assert c.get(page).status_code == 200
