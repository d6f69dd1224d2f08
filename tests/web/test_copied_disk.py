"""The copied-disk test (issue 14), on both engines: someone holds a copy of the database and of
every file beside it (the SQLite files, the generated `SECRET_KEYS` file, the logs), but no
access key. With the real secret keys they forge session cookies of the old form and of the
new, try the digests and key ids the copy holds, and replay cookies taken before a sign-out and
before a revocation, against the real server. No request reaches an `/admin` page, an export or
a change: each gets what a request without a session gets (the sign-in page, `401`).

The test also plays the owner, who does hold keys: the owner's own session works, and its id is
found nowhere on the copy, so the refusals above are the server's doing, not a broken forger.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import re
import secrets
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from server.domain import access_keys
from server.store.storage import Storage
from server.web.sessions import SALT, csrf_of
from tests.support import backends, live

SLUG = "save-russian-lgbt-network"
ADMIN = f"/admin/petitions/{SLUG}"
PARTNER = "ngo-copy"
PAGES = (
    "/admin",
    ADMIN,
    f"{ADMIN}/export.csv",
    f"{ADMIN}/export.json",
    f"{ADMIN}/export.sealed",
    f"{ADMIN}/partners/{PARTNER}",
    f"{ADMIN}/partners/{PARTNER}/export.csv",
    f"{ADMIN}/partners/{PARTNER}/export.sealed",
)


@dataclasses.dataclass
class Site:
    server: live.LiveServer
    folder: Path  # the disk: the database (on SQLite), the key file, the logs
    owner: access_keys.Key
    spare: access_keys.Key  # an owner key the test revokes
    partner: access_keys.Key
    signers: list[dict[str, str]]

    @property
    def url(self) -> str:
        return self.server.env["DATABASE_URL"]


@dataclasses.dataclass
class Copy:
    """What a copied disk gives: the secret keys, and the rows that name keys and sessions."""

    secret_keys: list[str]
    key_rows: list[tuple[str, str]]  # (id, secret_hash) of every access key
    session_rows: list[tuple[str, str]]  # (digest, key_id) of every session
    raw: bytes  # every byte of every file, and on PostgreSQL the rows of every table


def rows_of(url: str, work: str) -> list[tuple[str, ...]]:
    """The rows of a query, read as a copy of the database would give them."""

    async def go() -> list[tuple[str, ...]]:
        storage = Storage(url)
        await storage.connect()
        try:
            found = await storage.database.fetch_all(work)
            return [
                tuple(str(r[i]) for i in range(len(r))) for r in found
            ]  # a record iterates keys
        finally:
            await storage.disconnect()

    return asyncio.run(go())


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("disk")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
        extra: dict[str, str] = {}  # both key files are generated beside the database
    else:
        url = request.getfixturevalue("postgres").create()
        # PostgreSQL needs the email hash key given: here in a file on the same disk.
        hash_key = folder / "email-hash-key"
        hash_key.write_text(secrets.token_urlsafe(32) + "\n")
        extra = {
            "secret_key_file": str(folder / "petition-widget.key"),
            "email_hash_key_file": str(hash_key),
        }
    live.prepare(url)

    async def keys() -> tuple[access_keys.Key, access_keys.Key, access_keys.Key]:
        storage = Storage(url)
        await storage.connect()
        try:
            made = []
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            partner = await storage.add_partner(pid, PARTNER, "NGO Copy")
            for role, scope in (
                (access_keys.OWNER, {}),
                (access_keys.OWNER, {}),
                (access_keys.PARTNER, {"petition_id": pid, "partner_id": partner.id}),
            ):
                key = access_keys.generate(role)
                await storage.add_access_key(key.id, role, key.digest, "copied-disk", **scope)
                made.append(key)
            return made[0], made[1], made[2]
        finally:
            await storage.disconnect()

    owner, spare, partner = asyncio.run(keys())
    server = live.LiveServer(url, folder, **extra)
    # Generated, or given, in files on the disk: the copy has them.
    del server.env["SECRET_KEYS"], server.env["EMAIL_HASH_KEY"]
    with server:
        signers = []
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            for _ in range(3):
                person = live.new_signer("copy")
                token = c.get(f"/api/petitions/{SLUG}/token", params={"partner": PARTNER})
                signed = c.post(
                    f"/api/petitions/{SLUG}/signatures",
                    json={"token": token.json()["token"], **person, "consent_partner": True},
                )
                assert signed.status_code == 201, signed.text
                signers.append(person)
        yield Site(server, folder, owner, spare, partner, signers)


def copy_disk(site: Site, into: Path) -> Copy:
    """Copy every file of the disk and read it as a thief would, without the server's help."""
    shutil.copytree(site.folder, into)
    raw = b"".join(p.read_bytes() for p in sorted(into.rglob("*")) if p.is_file())
    key_file = next(
        p for p in into.iterdir() if p.name in ("petitions.db.key", "petition-widget.key")
    )
    secret_keys = [key_file.read_text().strip()]
    if site.url.startswith("sqlite"):
        # The copied database, its -wal and -shm included (recent commits live in the WAL).
        db = sqlite3.connect(into / Path(site.url.partition(":///")[2]).name)
        try:
            keys = db.execute("SELECT id, secret_hash FROM access_keys").fetchall()
            held = db.execute("SELECT digest, key_id FROM dashboard_sessions").fetchall()
        finally:
            db.close()
    else:  # the database's rows, as a dump of it would give them
        keys = rows_of(site.url, "SELECT id, secret_hash FROM access_keys")
        held = rows_of(site.url, "SELECT digest, key_id FROM dashboard_sessions")
        for table in ("access_keys", "dashboard_sessions", "signatures"):
            raw += repr(rows_of(site.url, f"SELECT * FROM {table}")).encode()
    return Copy(secret_keys, pairs(keys), pairs(held), raw)


def pairs(rows: Sequence[Sequence[object]]) -> list[tuple[str, str]]:
    return [(str(r[0]), str(r[1])) for r in rows]


def forger(secret_keys: list[str]) -> URLSafeTimedSerializer:
    """Signs cookies exactly as the server does, with the keys from the copy."""
    return URLSafeTimedSerializer(
        list(reversed(secret_keys)), salt=SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )


def sign_in(site: Site, key: access_keys.Key) -> httpx.Client:
    c = httpx.Client(base_url=site.server.base_url, timeout=30)
    assert c.post("/admin/login", data={"key": key.text}).status_code == 303
    return c


def csrf_on(c: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', c.get(path).text)
    assert found
    return found[1]


def assert_opens_nothing(site: Site, cookie: str, csrf: str, why: str) -> None:
    """Every dashboard page and export is the sign-in page, and a change changes nothing."""
    jar = {"Cookie": f"pw_admin={cookie}"}
    with httpx.Client(base_url=site.server.base_url, timeout=30, headers=jar) as c:
        for path in PAGES:
            response = c.get(path)
            assert response.status_code == 401, f"{why}: {path} answered {response.status_code}"
            assert 'action="/admin/login"' in response.text, why
            for person in site.signers:
                assert person["name"] not in response.text and person["email"] not in response.text
        login = c.get("/admin/login")
        assert login.status_code == 200 and 'action="/admin/login"' in login.text, why
        before = c.get(f"/api/petitions/{SLUG}").json()["status"]
        flip = "closed" if before == "open" else "open"
        posted = c.post(f"{ADMIN}/status", data={"status": flip, "csrf": csrf})
        assert posted.status_code == 401, f"{why}: a change answered {posted.status_code}"
        assert c.get(f"/api/petitions/{SLUG}").json()["status"] == before, why


def test_the_owners_own_session_opens_the_dashboard_and_its_id_is_on_no_disk(
    site: Site, tmp_path: Path
) -> None:
    """The positive case, so that the refusals below mean something: a real session, signed
    the way the forger signs, opens every page; the copy has its digest, never its id."""
    with contextlib.closing(sign_in(site, site.owner)) as c:
        cookie = c.cookies["pw_admin"]
        assert c.get(f"{ADMIN}/export.csv").text.count(site.signers[0]["email"]) == 1
        copy = copy_disk(site, tmp_path / "copy")
        session_id = forger(copy.secret_keys).loads(cookie)
        assert isinstance(session_id, str)
        # Given the id (which the copy lacks), the forger's cookie is as good as the real one.
        remade = forger(copy.secret_keys).dumps(session_id)
        assert (
            httpx.get(site.server.url(ADMIN), headers={"Cookie": f"pw_admin={remade}"}).status_code
            == 200
        )
        digest = hashlib.sha256(session_id.encode()).hexdigest()
        assert (digest, site.owner.id) in copy.session_rows
        for secret in (session_id, csrf_of(session_id), cookie, site.owner.secret):
            assert secret.encode() not in copy.raw


def test_cookies_forged_with_the_copied_secret_keys_open_nothing(
    site: Site, tmp_path: Path
) -> None:
    with contextlib.closing(
        sign_in(site, site.owner)
    ):  # a live session, so the copy holds a digest to try
        copy = copy_disk(site, tmp_path / "copy")
    assert copy.session_rows, "the copy should hold the live session's digest"
    forge = forger(copy.secret_keys)
    forged: list[tuple[str, str, str]] = []  # (why, cookie, the CSRF value sent with it)
    for key_id, secret_hash in copy.key_rows:
        csrf = secrets.token_urlsafe(18)
        # The old form, `[key_id, csrf]`: it opened an owner session before issue 14.
        forged.append((f"old form for key {key_id}", forge.dumps([key_id, csrf]), csrf))
        for guess in (key_id, secret_hash, secret_hash[:43]):
            forged.append((f"new form with a value of key {key_id}", forge.dumps(guess), "x"))
    for digest, _ in copy.session_rows:
        for guess in (digest, digest[:43], digest[-43:]):
            forged.append(("new form with a stored digest", forge.dumps(guess), csrf_of(guess)))
    random_id = secrets.token_urlsafe(32)
    forged.append(("new form with a random id", forge.dumps(random_id), csrf_of(random_id)))
    for why, cookie, csrf in forged:
        assert_opens_nothing(site, cookie, csrf, why)
    # Nor does the copy hold a key: its digests are not secrets that sign in.
    with httpx.Client(base_url=site.server.base_url, timeout=30) as c:
        for key_id, secret_hash in copy.key_rows:
            guess = access_keys.Key(access_keys.OWNER, key_id, secret_hash[:32]).text
            assert c.post("/admin/login", data={"key": guess}).status_code == 401
            bearer = {"Authorization": f"Bearer {guess}"}
            assert c.get(f"{ADMIN}/export.csv", headers=bearer).status_code == 401


def test_a_cookie_replayed_after_sign_out_opens_nothing(site: Site) -> None:
    with contextlib.closing(sign_in(site, site.partner)) as c:
        home = f"{ADMIN}/partners/{PARTNER}"
        cookie, csrf = c.cookies["pw_admin"], csrf_on(c, home)
        assert c.get(f"{home}/export.csv").status_code == 200
        assert c.post("/admin/logout", data={"csrf": csrf}).status_code == 303
    assert_opens_nothing(site, cookie, csrf, "replayed after sign-out")


def test_a_cookie_replayed_after_its_key_is_revoked_opens_nothing(site: Site) -> None:
    with contextlib.closing(sign_in(site, site.spare)) as c:
        cookie, csrf = c.cookies["pw_admin"], csrf_on(c, ADMIN)
        assert c.get(f"{ADMIN}/export.csv").status_code == 200

    async def revoke() -> None:
        storage = Storage(site.url)
        await storage.connect()
        try:
            assert await storage.revoke_access_key(site.spare.id)
        finally:
            await storage.disconnect()

    asyncio.run(revoke())
    rows = rows_of(site.url, "SELECT key_id FROM dashboard_sessions")
    assert (site.spare.id,) not in rows  # the revocation took its sessions with it
    assert_opens_nothing(site, cookie, csrf, "replayed after revocation")
