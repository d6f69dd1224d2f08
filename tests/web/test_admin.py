"""The dashboard, the exports and the keyed API on a live server, on both backends: who may see
what, sessions, CSRF, revocation, the numbers shown, and that an export never holds a signer
without the matching consent."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import html
import io
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from server.domain import access_keys, i18n
from server.store.storage import Storage
from server.web import sessions
from tests.support import backends, live, petitions

SLUG = "save-russian-lgbt-network"
SECOND = "second-petition"
EXAMPLE = petitions.example()
ADMIN = f"/admin/petitions/{SLUG}"
T = TypeVar("T")


@dataclasses.dataclass
class World:
    server: live.LiveServer
    ids: dict[str, int]  # petition and partner ids by name
    keys: dict[str, access_keys.Key]  # owner, scoped (second petition only), a, b, c (partners)
    signers: dict[str, dict[str, str]]  # by tag: name and email

    def email(self, tag: str) -> str:
        return self.signers[tag]["email"]


async def _opened(url: str) -> Storage:
    storage = Storage(url)
    await storage.connect()
    return storage


def in_storage(url: str, work: Callable[[Storage], Awaitable[T]]) -> T:
    """`work(storage)`'s result, on a storage opened for it."""

    async def run() -> T:
        storage = await _opened(url)
        try:
            return await work(storage)
        finally:
            await storage.disconnect()

    return asyncio.run(run())


async def new_key(storage: Storage, role: str, **scope: int) -> access_keys.Key:
    key = access_keys.generate(role)
    await storage.add_access_key(key.id, role, key.digest, "test", **scope)
    return key


def sign(c: httpx.Client, slug: str, partner: str = "", **consents: bool) -> dict[str, str]:
    person = live.new_signer()
    token = c.get(f"/api/petitions/{slug}/token", params={"partner": partner}).json()["token"]
    response = c.post(
        f"/api/petitions/{slug}/signatures", json={"token": token, **person, **consents}
    )
    assert response.status_code == 201, response.text
    return person


@pytest.fixture(scope="module")
def world(server: live.LiveServer) -> World:
    url = server.env["DATABASE_URL"]

    async def build(storage: Storage) -> tuple[dict[str, int], dict[str, access_keys.Key]]:
        pid = await storage.petition_id(SLUG)
        assert pid is not None
        a = await storage.add_partner(pid, "ngo-a", "NGO A")
        b = await storage.add_partner(pid, "ngo-b", "NGO B")
        await storage.import_petitions([dataclasses.replace(EXAMPLE, slug=SECOND)])
        second = await storage.petition_id(SECOND)
        assert second is not None
        c = await storage.add_partner(second, "ngo-c", "NGO C")
        made = {
            "owner": await new_key(storage, access_keys.OWNER),
            "scoped": await new_key(storage, access_keys.OWNER, petition_id=second),
            "a": await new_key(storage, access_keys.PARTNER, petition_id=pid, partner_id=a.id),
            "b": await new_key(storage, access_keys.PARTNER, petition_id=pid, partner_id=b.id),
            "c": await new_key(storage, access_keys.PARTNER, petition_id=second, partner_id=c.id),
        }
        return {"petition": pid, "second": second, "a": a.id, "b": b.id, "c": c.id}, made

    ids, made = in_storage(url, build)
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        deadline = time.monotonic() + 10
        while c.get(f"/api/petitions/{SECOND}").status_code != 200:  # the registry reloaded
            assert time.monotonic() < deadline
            time.sleep(0.05)
        signers = {
            "a-yes": sign(c, SLUG, "ngo-a", consent_partner=True, consent_organiser=True),
            "a-no": sign(c, SLUG, "ngo-a", consent_partner=False, consent_organiser=True),
            "b-yes": sign(c, SLUG, "ngo-b", consent_partner=True),
            # No partner, or an unknown code: there was no partner box to tick.
            "direct": sign(c, SLUG, "", consent_partner=True),
            "unknown": sign(c, SLUG, "typo-code", consent_partner=True),
            "c-yes": sign(c, SECOND, "ngo-c", consent_partner=True),
        }
    return World(server, ids, made, signers)


def signed_in(world: World, who: str) -> httpx.Client:
    c = httpx.Client(base_url=world.server.base_url, timeout=30)
    response = c.post("/admin/login", data={"key": world.keys[who].text})
    assert response.status_code == 303, response.text
    return c


@pytest.fixture(scope="module")
def owner(world: World) -> Iterator[httpx.Client]:
    with contextlib.closing(signed_in(world, "owner")) as c:
        yield c


@pytest.fixture(scope="module")
def partner_a(world: World) -> Iterator[httpx.Client]:
    with contextlib.closing(signed_in(world, "a")) as c:
        yield c


def csrf_of(c: httpx.Client, path: str = ADMIN) -> str:
    page = c.get(path)
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found[1]


def rows_of(csv_text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_text)))


# --- Signing in ------------------------------------------------------------------------------


def test_sign_in_sets_a_strict_session_cookie(world: World) -> None:
    with httpx.Client(base_url=world.server.base_url) as c:
        response = c.post("/admin/login", data={"key": world.keys["owner"].text})
        assert response.status_code == 303
        assert response.headers["location"] == "/admin"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("pw_admin=")
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags  # plain http here; see the HTTPS test
        assert world.keys["owner"].secret not in cookie
        assert c.get("/admin").status_code == 200


def test_a_partner_lands_on_its_own_page(world: World) -> None:
    with httpx.Client(base_url=world.server.base_url) as c:
        response = c.post("/admin/login", data={"key": world.keys["a"].text})
        assert response.headers["location"] == f"{ADMIN}/partners/ngo-a"
        overview = c.get("/admin")  # the owners' page: refused, with the way to its own
        assert overview.status_code == 403
        assert f'href="{ADMIN}/partners/ngo-a"' in overview.text
        assert c.get("/admin/login").headers["location"] == f"{ADMIN}/partners/ngo-a"


def test_every_wrong_key_gets_the_same_401(world: World) -> None:
    owner = world.keys["owner"]
    revoked = in_storage(world.server.env["DATABASE_URL"], lambda s: _revoked_key(s))
    wrong = [
        "",
        "garbage",
        access_keys.generate(access_keys.OWNER).text,  # unknown id
        access_keys.Key(
            access_keys.OWNER, owner.id, access_keys.generate(access_keys.OWNER).secret
        ).text,  # wrong secret
        access_keys.Key(access_keys.PARTNER, owner.id, owner.secret).text,  # wrong role prefix
        revoked.text,
    ]
    with httpx.Client(base_url=world.server.base_url) as c:
        pages = [c.post("/admin/login", data={"key": k}) for k in wrong]
        assert {p.status_code for p in pages} == {401}
        assert len({p.text for p in pages}) == 1  # word for word the same page
        assert "set-cookie" not in pages[0].headers
        export = f"{ADMIN}/export.csv"
        answers = [c.get(export, headers={"Authorization": f"Bearer {k}"}) for k in wrong if k]
        answers.append(c.get(export, headers={"Authorization": f"Basic {owner.text}"}))
        assert {a.status_code for a in answers} == {401}
        assert len({a.text for a in answers}) == 1
        assert answers[0].headers["www-authenticate"].startswith("Bearer")


async def _revoked_key(storage: Storage) -> access_keys.Key:
    key = await new_key(storage, access_keys.OWNER)
    await storage.revoke_access_key(key.id)
    return key


def test_a_key_from_a_link_is_shown_and_signs_in_only_when_confirmed(world: World) -> None:
    """admin.js posts a link's key with step=link: the answer names the key's role and scope
    and sets no cookie; only the confirming form (the same key, without step) signs in."""
    with httpx.Client(base_url=world.server.base_url, timeout=30) as c:
        for who, words in (
            ("a", ["partner", "ngo-a", SLUG]),
            ("scoped", ["owner", SECOND]),
            ("owner", ["owner", "every petition"]),
        ):
            asked = c.post(
                "/admin/login", data={"key": world.keys[who].text, "step": "link", "next": "/admin"}
            )
            assert asked.status_code == 200 and "set-cookie" not in asked.headers
            scope = re.search(r'<p id="login-scope">(.*?)</p>', asked.text)
            assert scope is not None and all(w in html.unescape(scope.group(1)) for w in words)
            assert 'id="login-confirm"' in asked.text
        wrong = c.post("/admin/login", data={"key": "pwo_nothing_here", "step": "link"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        confirmed = c.post("/admin/login", data={"key": world.keys["owner"].text, "next": "/admin"})
        assert confirmed.status_code == 303 and "set-cookie" in confirmed.headers


def test_without_a_key_pages_answer_401_with_the_sign_in_form(world: World) -> None:
    """No key at all: 401, as for a wrong one; a browser sees the sign-in form in place, which
    returns to the page asked for, and a script gets no page to follow."""
    with httpx.Client(base_url=world.server.base_url) as c:
        for path in ("/admin", ADMIN, f"{ADMIN}/export.csv", f"{ADMIN}/partners/ngo-a"):
            response = c.get(path)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == 'Bearer realm="petition-widget"'
            assert 'action="/admin/login"' in response.text
            assert f'name="next" value="{path}"' in response.text
            assert "csv" not in response.headers["content-type"]
        before = c.get(f"/api/petitions/{SLUG}").json()["status"]
        posted = c.post(
            f"{ADMIN}/status", data={"status": "closed" if before == "open" else "open"}
        )
        assert posted.status_code == 401 and 'name="next" value="/admin"' in posted.text
        assert c.get(f"/api/petitions/{SLUG}").json()["status"] == before


def test_sign_in_returns_to_the_page_asked_for_and_nowhere_else(world: World) -> None:
    with httpx.Client(base_url=world.server.base_url) as c:
        key = world.keys["owner"].text
        back = c.post("/admin/login", data={"key": key, "next": f"{ADMIN}/partners/ngo-b"})
        assert back.headers["location"] == f"{ADMIN}/partners/ngo-b"
        for elsewhere in ("https://evil.example/", "//evil.example/admin/", "/admin/../x"):
            response = c.post("/admin/login", data={"key": key, "next": elsewhere})
            assert response.headers["location"] == "/admin"


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "tampered",
        "other-secret",
        "expired",
    ],
)
def test_a_forged_or_expired_session_goes_back_to_sign_in(world: World, cookie: str) -> None:
    with contextlib.closing(signed_in(world, "owner")) as c:
        genuine = c.cookies["pw_admin"]
    value = {
        "garbage": "not-a-session",
        "tampered": genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),
        "other-secret": sessions.Sessions(["another-secret"]).new()[1],
        "expired": sessions.Sessions(
            [live.SECRET], clock=lambda: time.time() - sessions.MAX_AGE - 60
        ).new()[1],
    }[cookie]
    headers = {"Cookie": f"pw_admin={value}"}
    response = httpx.get(world.server.url(ADMIN), headers=headers)
    assert response.status_code == 401
    assert 'action="/admin/login"' in response.text
    assert 'pw_admin=""' in response.headers["set-cookie"]  # forgotten
    assert "max-age=0" in response.headers["set-cookie"].lower()
    # The same key in a genuine, fresh session works: only the cookie was wrong.
    fresh = httpx.get(world.server.url(ADMIN), headers={"Cookie": f"pw_admin={genuine}"})
    assert fresh.status_code == 200


def test_sign_out_ends_the_session(world: World) -> None:
    with contextlib.closing(signed_in(world, "owner")) as c:
        assert c.post("/admin/logout", data={"csrf": csrf_of(c)}).status_code == 303
        assert c.get(ADMIN).status_code == 401


# --- CSRF and cross-site posts --------------------------------------------------------------


def test_state_changes_need_the_csrf_token_and_our_own_site(
    world: World, owner: httpx.Client
) -> None:
    token = csrf_of(owner)
    status = f"{ADMIN}/status"
    refused = [
        owner.post(status, data={"status": "closed"}),
        owner.post(status, data={"status": "closed", "csrf": "wrong"}),
        owner.post(status, data={"status": "closed", "csrf": csrf_of(signed_in(world, "owner"))}),
        owner.post(
            status,
            data={"status": "closed", "csrf": token},
            headers={"Origin": "https://evil.example"},
        ),
        owner.post(
            status,
            data={"status": "closed", "csrf": token},
            headers={"Sec-Fetch-Site": "cross-site"},
        ),
        owner.post(status, json={"status": "closed", "csrf": token}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert owner.get(f"/api/petitions/{SLUG}").json()["status"] == "open"
    login = httpx.post(
        world.server.url("/admin/login"),
        data={"key": world.keys["owner"].text},
        headers={"Origin": "https://evil.example"},
    )
    assert login.status_code == 403 and "set-cookie" not in login.headers


def test_close_reopen_and_raise_the_goal(world: World, owner: httpx.Client) -> None:
    token = csrf_of(owner)
    closed = owner.post(f"{ADMIN}/status", data={"status": "closed", "csrf": token})
    assert closed.status_code == 303 and "done=closed" in closed.headers["location"]
    assert owner.get(f"/api/petitions/{SLUG}").json()["status"] == "closed"
    signed = owner.post(
        f"/api/petitions/{SLUG}/signatures",
        json={"token": owner.get(f"/api/petitions/{SLUG}/token").json()["token"],
              **live.new_signer()},
    )  # fmt: skip
    assert signed.status_code == 403 and signed.json()["error"] == "petition_closed"
    assert "The petition is <strong>closed</strong>" in owner.get(ADMIN).text
    reopened = owner.post(f"{ADMIN}/status", data={"status": "open", "csrf": token})
    assert "done=opened" in reopened.headers["location"]
    assert owner.get(f"/api/petitions/{SLUG}").json()["status"] == "open"

    goal = owner.get(f"/api/petitions/{SLUG}").json()["goal"]
    lower = owner.post(f"{ADMIN}/goal", data={"goal": str(goal - 1), "csrf": token})
    assert "error=goal-not-higher" in lower.headers["location"]
    too_high = owner.post(f"{ADMIN}/goal", data={"goal": "10000000000", "csrf": token})
    assert "error=goal-too-high" in too_high.headers["location"]
    # Anything but ASCII digits is refused by the field, 400: `²` passed `isdigit()`, then
    # `int()` raised (a 500); `٣` would have been read as 3.
    for bad in ("", "lots", "-5", "²", "1²", "٣٠٠٠٠٠", "１０００００", "1_000_000", "1e9"):
        refused = owner.post(f"{ADMIN}/goal", data={"goal": bad, "csrf": token})
        assert refused.status_code == 400, bad
        assert 'id="goal-error"' in refused.text and "digits 0 to 9" in refused.text
    assert owner.get(f"/api/petitions/{SLUG}").json()["goal"] == goal
    raised = owner.post(f"{ADMIN}/goal", data={"goal": str(goal + 10_000), "csrf": token})
    assert "done=goal" in raised.headers["location"]
    assert owner.get(f"/api/petitions/{SLUG}").json()["goal"] == goal + 10_000
    page = owner.get(raised.headers["location"])
    assert "The goal has been raised." in page.text


def test_redeliver_takes_ascii_digits_only(owner: httpx.Client) -> None:
    """Every numeric field of the dashboard, not only the goal: `²` passed `isdigit()` in the
    webhooks' redeliver button (its endpoint in the path, its event in the form), then `int()`
    raised, a 500; a number past any row id overflowed the database's integer, a 500 too."""
    token = csrf_of(owner)
    for endpoint, event in (("1", "²"), ("²", "1"), ("1", "1²"), ("1", "9" * 30), ("9" * 30, "1")):
        refused = owner.post(
            f"{ADMIN}/webhooks/{endpoint}/redeliver", data={"event": event, "csrf": token}
        )
        assert refused.status_code == 303, (endpoint, event)
        assert "error=not-redelivered" in refused.headers["location"]


def test_changes_reach_the_database_and_every_worker_through_the_revision(world: World) -> None:
    url = world.server.env["DATABASE_URL"]
    before = in_storage(url, lambda s: s.content_revision())
    with contextlib.closing(signed_in(world, "owner")) as c:
        token = csrf_of(c, f"/admin/petitions/{SECOND}")
        c.post(f"/admin/petitions/{SECOND}/status", data={"status": "closed", "csrf": token})
        rows = in_storage(url, lambda s: s.petitions())
        assert {r.slug: r.status for r in rows}[SECOND] == "closed"
        assert in_storage(url, lambda s: s.content_revision()) > before
        c.post(f"/admin/petitions/{SECOND}/status", data={"status": "open", "csrf": token})


# --- Who sees what ---------------------------------------------------------------------------


def test_a_partner_key_is_refused_elsewhere(world: World, partner_a: httpx.Client) -> None:
    for path in (
        ADMIN,  # the owner's page
        f"{ADMIN}/export.csv",
        f"{ADMIN}/export.json",
        f"{ADMIN}/partners/ngo-b",  # another partner
        f"{ADMIN}/partners/ngo-b/export.csv",
        f"{ADMIN}/partners/no-such-partner",
        f"/admin/petitions/{SECOND}",
        f"/admin/petitions/{SECOND}/partners/ngo-c/export.csv",
        "/admin/petitions/no-such-petition/partners/ngo-a",
    ):
        assert partner_a.get(path).status_code == 403, path
    token = csrf_of(partner_a, f"{ADMIN}/partners/ngo-a")
    for action, field in (("status", {"status": "closed"}), ("goal", {"goal": "999999"})):
        response = partner_a.post(f"{ADMIN}/{action}", data={**field, "csrf": token})
        assert response.status_code == 403
    bearer = {"Authorization": f"Bearer {world.keys['a'].text}"}
    assert httpx.get(world.server.url(f"{ADMIN}/export.csv"), headers=bearer).status_code == 403
    assert httpx.get(world.server.url(f"/api/petitions/{SECOND}"), headers=bearer).status_code == (
        403
    )


def test_an_owner_key_for_one_petition_sees_only_that_one(world: World) -> None:
    with contextlib.closing(signed_in(world, "scoped")) as c:
        overview = c.get("/admin").text
        assert (
            f"/admin/petitions/{SECOND}" in overview and f"/admin/petitions/{SLUG}" not in overview
        )
        assert c.get(f"/admin/petitions/{SECOND}").status_code == 200
        assert c.get(f"/admin/petitions/{SECOND}/partners/ngo-c").status_code == 200
        assert c.get(ADMIN).status_code == 403
        assert c.get(f"{ADMIN}/partners/ngo-a").status_code == 403
        assert c.get(f"{ADMIN}/export.csv").status_code == 403


def test_owner_dashboard_numbers(world: World, owner: httpx.Client) -> None:
    page = owner.get(ADMIN)
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", page.text)
    total = owner.get(f"/api/petitions/{SLUG}").json()["signatures"]
    assert f'<span class="stat-value">{total:,}</span>' in text
    row = text[text.index("/partners/ngo-a") :]
    assert re.search(r'NGO A</a>.*?<td class="num">2</td>', row)
    assert "typo-code" in text and "Unknown code" in text
    assert 'id="per-day"' in text and 'id="per-hour"' in text
    assert "<title" in text and "as a table" in text
    # Owners see numbers and exports, never signers' addresses on the page.
    assert all(world.email(tag) not in page.text for tag in world.signers)


def test_partner_page_lists_only_its_consenting_signers(
    world: World, owner: httpx.Client, partner_a: httpx.Client
) -> None:
    page = partner_a.get(f"{ADMIN}/partners/ngo-a")
    assert page.status_code == 200
    assert world.signers["a-yes"]["name"] in page.text
    for other in ("a-no", "b-yes", "direct", "unknown", "c-yes"):
        assert world.signers[other]["name"] not in page.text
    assert "typo-code" not in page.text and "NGO B" not in page.text
    # No page shows an email address, not even its own consenting signer's: the export has it.
    for viewer in (partner_a, owner):
        text = viewer.get(f"{ADMIN}/partners/ngo-a").text
        assert all(world.email(tag) not in text for tag in world.signers)


def test_dashboard_pages_are_locked_down(owner: httpx.Client) -> None:
    for path in ("/admin", ADMIN, f"{ADMIN}/partners/ngo-a", "/admin/login"):
        response = (
            owner.get(path) if path != "/admin/login" else httpx.get(owner.base_url.join(path))
        )
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        html = response.text
        assert "<style" not in html and 'style="' not in html
        assert all('src="' in tag for tag in re.findall(r"<script[^>]*>", html))


def test_dashboard_assets_are_fingerprinted(owner: httpx.Client) -> None:
    html = owner.get("/admin/login").text
    for url in re.findall(r'(?:href|src)="(/admin/assets/[^"]+)"', html):
        response = owner.get(url)
        assert response.status_code == 200
        assert "immutable" in response.headers["cache-control"]
    assert owner.get("/admin/assets/nothing.js").status_code == 404


def test_snippet_generator_renders_a_checked_snippet(owner: httpx.Client) -> None:
    page = owner.get(ADMIN, params={"partner": "ngo-b", "lang": "ru", "accent": "#c0392b"})
    assert "data-partner=&#34;ngo-b&#34; data-lang=&#34;ru&#34;" in page.text
    preview = f"/widget/{SLUG}?partner=ngo-b&amp;lang=ru&amp;accent=%23c0392b&amp;preview=1"
    assert f'src="{preview}"' in page.text
    hostile = owner.get(ADMIN, params={"partner": '"><script>', "accent": "red;x", "lang": "zz"})
    assert "<script>" not in hostile.text and "red;x" not in hostile.text
    assert f'src="/widget/{SLUG}?preview=1"' in hostile.text


def test_the_preview_cannot_sign(owner: httpx.Client) -> None:
    """Trying the snippet must not add to the count or to a partner's list."""
    page = owner.get(f"/widget/{SLUG}", params={"partner": "ngo-b", "preview": "1"})
    assert page.status_code == 200
    assert 'name="token" value=""' in page.text
    assert re.search(r'<button type="submit" class="pw-submit" disabled', page.text)
    assert '"preview": true' in page.text or '"preview":true' in page.text
    visitors = owner.get(f"/widget/{SLUG}", params={"partner": "ngo-b"}).text
    assert re.search(r'name="token" value="[^"]{40,}"', visitors)
    button = re.search(r"<button type=\"submit\"[^>]*>", visitors)
    assert button is not None and "disabled" not in button.group(0)


def test_no_preview_signs_whatever_its_address(world: World, owner: httpx.Client) -> None:
    """A dashboard page's frame is a preview even without preview=1 in its address (admin.js
    built it so once any option changed: signing in it counted), and a submission from a
    preview's form is refused even with a genuine token."""
    dashboard = world.server.url(f"{ADMIN}?accent=%23c0392b")
    framed = owner.get(
        f"/widget/{SLUG}", params={"partner": "ngo-b"}, headers={"Referer": dashboard}
    )
    assert 'name="token" value=""' in framed.text
    assert re.search(r'<button type="submit" class="pw-submit" disabled', framed.text)
    assert 'name="preview" value="1"' in framed.text
    before = owner.get(f"/api/petitions/{SLUG}").json()["signatures"]
    token = owner.get(f"/api/petitions/{SLUG}/token", params={"partner": "ngo-b"}).json()["token"]
    body = {"token": token, **live.new_signer(), "consent_partner": True, "preview": "1"}
    as_json = owner.post(f"/api/petitions/{SLUG}/signatures", json=body)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_token"
    as_form = owner.post(
        f"/api/petitions/{SLUG}/signatures", data=body, headers={"Accept": "text/html"}
    )
    assert as_form.status_code == 400
    assert 'name="token" value=""' in as_form.text  # the form comes back as a preview still
    assert owner.get(f"/api/petitions/{SLUG}").json()["signatures"] == before
    # Elsewhere (another site's page, or none) the same address is the visitors' widget.
    other = owner.get(f"/widget/{SLUG}", headers={"Referer": "https://example.org/admin/x"})
    assert re.search(r'name="token" value="[^"]{40,}"', other.text)


# --- Exports -------------------------------------------------------------------------------------


def test_partner_export_holds_only_its_own_consenting_signers(
    world: World, partner_a: httpx.Client
) -> None:
    response = partner_a.get(f"{ADMIN}/partners/ngo-a/export.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "no-store"
    rows = rows_of(response.text)
    assert [r["email"] for r in rows] == [world.email("a-yes")]
    assert list(rows[0]) == [
        "signed_at", "confirmed_at", "name", "email", "country", "lang", "consent_version",
        "consent_text",
    ]  # fmt: skip
    assert "NGO A" in rows[0]["consent_text"]  # the very words the signer agreed to
    as_json = json.loads(partner_a.get(f"{ADMIN}/partners/ngo-a/export.json").text)
    assert [r["email"] for r in as_json] == [world.email("a-yes")]
    # The same file through a key header, as a script would fetch it.
    bearer = {"Authorization": f"Bearer {world.keys['a'].text}"}
    scripted = httpx.get(world.server.url(f"{ADMIN}/partners/ngo-a/export.csv"), headers=bearer)
    assert scripted.text == response.text


def test_owner_export_holds_every_signer_with_their_consents(
    world: World, owner: httpx.Client
) -> None:
    rows = {r["email"]: r for r in rows_of(owner.get(f"{ADMIN}/export.csv").text)}
    mine = {tag: rows[world.email(tag)] for tag in ("a-yes", "a-no", "b-yes", "direct", "unknown")}
    assert world.email("c-yes") not in rows  # another petition
    assert (mine["a-yes"]["consent_partner"], mine["a-yes"]["consent_organiser"]) == (
        "true",
        "true",
    )
    assert mine["a-no"]["consent_partner"] == "false"
    assert mine["a-no"]["partner_code"] == "ngo-a" and mine["a-no"]["partner_name"] == "NGO A"
    # Boxes that were never shown cannot have been ticked.
    assert mine["direct"]["consent_partner"] == mine["unknown"]["consent_partner"] == "false"
    assert mine["unknown"]["unknown_partner_code"] == "typo-code"
    assert mine["unknown"]["partner_code"] == ""
    assert all(r["consent_text"] and r["consent_version"] for r in mine.values())
    as_json = json.loads(owner.get(f"{ADMIN}/export.json").text)
    assert {r["email"] for r in as_json} == set(rows)
    assert next(r for r in as_json if r["email"] == world.email("a-no"))["consent_partner"] is False


def test_excel_csv_starts_with_a_byte_order_mark(owner: httpx.Client) -> None:
    response = owner.get(f"{ADMIN}/export.csv", params={"bom": "1"})
    assert response.content.startswith(b"\xef\xbb\xbfid,signed_at,")
    assert not owner.get(f"{ADMIN}/export.csv").content.startswith(b"\xef\xbb\xbf")
    assert owner.get(f"{ADMIN}/export.xml").status_code == 404


# --- The keyed public API ------------------------------------------------------------------------


def test_unkeyed_petition_stays_public_and_cacheable(client: httpx.Client, world: World) -> None:
    response = client.get(f"/api/petitions/{SLUG}")
    assert "partners" not in response.json()
    assert response.headers["cache-control"].startswith("public")
    assert "Authorization" in response.headers["vary"]


def test_owner_key_gets_the_partner_breakdown(world: World) -> None:
    bearer = {"Authorization": f"Bearer {world.keys['owner'].text}"}
    response = httpx.get(world.server.url(f"/api/petitions/{SLUG}"), headers=bearer)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    assert "Authorization" in response.headers["vary"]
    data = response.json()
    by_code = {p["code"]: p for p in data["partners"]}
    assert by_code["ngo-a"]["signatures"] == 2 and by_code["ngo-b"]["signatures"] == 1
    assert by_code["ngo-a"]["last_signature_at"].endswith("Z")
    assert data["without_partner"]["unknown_codes"][0]["code"] == "typo-code"
    total = sum(p["signatures"] for p in data["partners"])
    total += data["without_partner"]["signatures"]
    total += sum(u["signatures"] for u in data["without_partner"]["unknown_codes"])
    assert total == data["signatures"]


def test_partner_key_gets_only_its_own_line(world: World) -> None:
    bearer = {"Authorization": f"Bearer {world.keys['a'].text}"}
    data = httpx.get(world.server.url(f"/api/petitions/{SLUG}"), headers=bearer).json()
    assert [p["code"] for p in data["partners"]] == ["ngo-a"]
    assert "without_partner" not in data


def test_wrong_key_on_the_api_is_401(world: World) -> None:
    for value in (
        "Bearer nope",
        "Bearer " + access_keys.generate(access_keys.OWNER).text,
        "Basic x",
        "",
    ):
        response = httpx.get(
            world.server.url(f"/api/petitions/{SLUG}"), headers={"Authorization": value}
        )
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["cache-control"] == "private, no-store"


# --- Revocation ----------------------------------------------------------------------------------


# --- Servers of their own ------------------------------------------------------------------------


@dataclasses.dataclass
class Lone:
    server: live.LiveServer
    key: access_keys.Key


@pytest.fixture(scope="module")
def behind_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lone]:
    """A server whose public URL is https (as behind a TLS proxy), on SQLite: what it tests
    does not depend on the database engine."""
    folder = tmp_path_factory.mktemp("https")
    url = backends.sqlite_url(folder)
    live.prepare(url)
    key = in_storage(url, lambda s: new_key(s, access_keys.OWNER))
    # The shipped limit on wrong keys (the test servers' default is none).
    settings: dict[str, str | int] = {
        "base_url": "https://petitions.example.org",
        "rate_login_per_minute": 10,
    }
    with live.LiveServer(url, folder, **settings) as srv:
        yield Lone(srv, key)


def test_cookie_is_secure_behind_https(behind_https: Lone) -> None:
    srv = behind_https.server
    response = httpx.post(srv.url("/admin/login"), data={"key": behind_https.key.text})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-pw_admin=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= flags
    session = cookie.split(";")[0].split("=", 1)[1]
    page = httpx.get(srv.url("/admin"), headers={"Cookie": f"__Host-pw_admin={session}"})
    assert page.status_code == 200
    plain = httpx.get(srv.url("/admin"), headers={"Cookie": f"pw_admin={session}"})
    assert plain.status_code == 401  # over HTTPS only the __Host- cookie counts


def test_sign_in_is_rate_limited(behind_https: Lone) -> None:
    with httpx.Client(base_url=behind_https.server.base_url) as c:
        statuses = [c.post("/admin/login", data={"key": "wrong"}).status_code for _ in range(70)]
        assert statuses[0] == 401 and statuses[-1] == 429
        limited = c.post("/admin/login", data={"key": behind_https.key.text})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_a_revoked_key_stops_at_once_on_every_worker(
    postgres: backends.PostgresDatabases, tmp_path: Path
) -> None:
    """Two worker processes on PostgreSQL, as README suggests for several workers."""
    url = postgres.create()
    live.prepare(url)
    key = in_storage(url, lambda s: new_key(s, access_keys.OWNER))
    with live.LiveServer(url, tmp_path, workers=2) as srv:
        c = httpx.Client(base_url=srv.base_url)
        assert c.post("/admin/login", data={"key": key.text}).status_code == 303
        session = c.cookies["pw_admin"]
        bearer = {"Authorization": f"Bearer {key.text}"}
        assert c.get(ADMIN).status_code == 200
        assert httpx.get(srv.url(f"/api/petitions/{SLUG}"), headers=bearer).status_code == 200
        in_storage(url, lambda s: s.revoke_access_key(key.id))
        for _ in range(8):  # new connections, spread over both workers
            page = httpx.get(srv.url(ADMIN), headers={"Cookie": f"pw_admin={session}"})
            assert page.status_code == 401
            api = httpx.get(srv.url(f"/api/petitions/{SLUG}"), headers=bearer)
            assert api.status_code == 401
            assert httpx.get(srv.url(f"{ADMIN}/export.csv"), headers=bearer).status_code == 401
        c.close()


# --- Storage ---------------------------------------------------------------------------------


def test_reimporting_a_file_keeps_what_the_dashboard_changed(database_url: str) -> None:
    async def check() -> None:
        storage = await _opened(database_url)
        await storage.migrate()
        await storage.import_petitions([EXAMPLE])
        pid = await storage.petition_id(SLUG)
        assert pid is not None
        assert await storage.set_petition_status(pid, "closed")
        assert await storage.set_petition_goal(pid, 80_000)
        assert not await storage.set_petition_goal(pid, 80_000)  # no change
        edited = dataclasses.replace(EXAMPLE, share_url="https://example.org/new")
        assert await storage.import_petitions([edited]) == {SLUG: "updated"}
        row = (await storage.petitions())[0]
        assert (row.status, row.goal) == ("closed", 80_000)
        assert await storage.import_petitions([edited]) == {SLUG: "unchanged"}
        # A file that itself changes the goal or the status wins.
        assert await storage.import_petitions([dataclasses.replace(edited, goal=90_000)])
        row = (await storage.petitions())[0]
        assert (row.status, row.goal) == ("closed", 90_000)
        await storage.disconnect()

    asyncio.run(check())


def test_signer_names_are_shown_as_text_on_the_partner_page(
    world: World, owner: httpx.Client
) -> None:
    """A signer's name is the one text of a stranger's that reaches the dashboard."""
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)><svg onload=alert(3)>'
    url = world.server.env["DATABASE_URL"]
    in_storage(url, lambda s: s.add_partner(world.ids["second"], "ngo-x", "NGO X"))
    page = f"/admin/petitions/{SECOND}/partners/ngo-x"
    with httpx.Client(base_url=world.server.base_url, timeout=30) as c:
        deadline = time.monotonic() + 10
        frame = f"/widget/{SECOND}?partner=ngo-x"
        while "NGO X" not in c.get(frame).text:  # the registry knows the partner
            assert time.monotonic() < deadline
            time.sleep(0.05)
        token = c.get(f"/api/petitions/{SECOND}/token", params={"partner": "ngo-x"}).json()
        body = {"token": token["token"], "name": hostile, "email": "x@example.org"}
        signed = c.post(
            f"/api/petitions/{SECOND}/signatures", json={**body, "consent_partner": True}
        )
        assert signed.status_code == 201, signed.text
    html = owner.get(page).text
    assert "<script>alert" not in html and "<img src=x" not in html and "<svg onload" not in html
    assert "onerror=" not in html.replace("onerror=alert(2)&gt;", "")  # only the escaped text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, as text


# --- Languages ---------------------------------------------------------------------------------


def dashboard_fragments(lang: str) -> set[str]:
    """The words of a catalog's dashboard texts, between placeholders and markup."""
    texts = i18n.catalog(lang).dashboard or {}
    pieces = (re.split(r"\{\w+\}|`[^`]*`|\*\*", text) for text in texts.values())
    return {p.strip() for parts in pieces for p in parts if len(p.strip()) >= 12}


def test_dashboard_speaks_the_browsers_language(world: World, owner: httpx.Client) -> None:
    ru = i18n.catalog("ru")
    page = owner.get(ADMIN, headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert page.status_code == 200 and page.headers["content-language"] == "ru"
    assert '<html lang="ru" dir="ltr">' in page.text
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text)))
    for key in ("progress_h", "partners_h", "manage_h", "export_h"):
        assert ru.admin(key) in text, key
    assert ru.admin("chart_per_day", zone="UTC") in text
    # Numbers and dates as Russian writes them: 50 000, 0,0 %, "24 нояб. 2025 г., 21:05".
    total = owner.get(f"/api/petitions/{SLUG}").json()["signatures"]
    goal = owner.get(f"/api/petitions/{SLUG}").json()["goal"]
    assert " ".join(ru.admin("goal_line", goal=goal).split()) in text
    assert f'<span class="stat-value">{ru.number(total)}</span>' in page.text
    assert " ".join(ru.percent(total / goal).split()) in text
    assert re.search(r"\d{1,2} [а-я]+\.? \d{4}\s?г\., \d\d:\d\d UTC", text), text[:3000]
    # No English text of the dashboard is left.
    left = [f for f in dashboard_fragments("en") if f in text]
    assert not left, left
    # A language the dashboard does not speak falls back to English; German widgets are
    # another matter (the widget speaks it).
    german = owner.get(ADMIN, headers={"Accept-Language": "de-CH,de;q=0.9"})
    assert '<html lang="en" dir="ltr">' in german.text
    assert i18n.catalog("en").admin("manage_h") in german.text


def test_sign_in_page_in_russian(client: httpx.Client) -> None:
    page = client.get("/admin/login", headers={"Accept-Language": "ru"})
    assert page.status_code == 200
    assert f"<h1>{i18n.catalog('ru').admin('sign_in')}</h1>" in page.text
    assert "<code>pwo_</code>" in page.text  # the catalog's `code`, as markup
