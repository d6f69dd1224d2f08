"""`petition-widget delivery`: the pack's text as `pdftotext` reads it back (English, Russian,
Arabic, after NFKC), the fonts embedded, only the signers who ticked the box named (no email,
no partner without `--with-partners`), the CSV with the same lists and formula-safe, an empty
petition, and sealed databases opened with `--secret-key`: sealed at submission, sealed in place
by `petition-widget seal`, and sealed and confirmed by email on both engines.

Signers sign through a live server (SQLite: the command reads the file it leaves), so the
names reach the database the way real ones do."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.domain import sealing
from server.domain.petitions import Petition, Texts
from server.store.storage import Storage
from tests.support import backends, live, petitions
from tests.support.pdf import nfkc, text_of
from tests.test_cli import cli
from tests.test_cli_sealed_deletion import close_days_ago

pytestmark = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="pdftotext is missing (Debian: poppler-utils)"
)

SLUG = "deliver-me"
EMPTY = "nobody-yet"
PARTNER = "Allies of Kazan"
# Arabic without the lam-alef ligatures: pdftotext gives a ligature's letters back in visual
# order, so a word holding one does not compare (the glyphs are there; the check is on text).
ARABIC_TITLE = "أوقفوا قمع منظمات المجتمع المدني"
ARABIC_TARGET = "حكومة روسيا"


def _petition() -> Petition:
    base = petitions.example()
    arabic = Texts(
        title=ARABIC_TITLE,
        summary="نص قصير",
        target=ARABIC_TARGET,
        statement="نطالب بوقف القمع فورا.",
    )
    return dataclasses.replace(
        base, slug=SLUG, goal=4, name_to_target="optional", texts={**base.texts, "ar": arabic}
    )


PETITION = _petition()
# (name, country, ticked the box, partner code)
SIGNERS = [
    ("Анна Петрова", "RU", True, "allies"),
    ("محمد حسين", "EG", True, ""),
    ("=1+2 Formula", "DE", True, ""),
    ("Hidden Person Kazakova", "KZ", False, "allies"),
    ("Quiet Signer Ivanov", "RU", False, ""),
]


@dataclasses.dataclass
class Signed:
    folder: Path
    url: str
    emails: list[str]


def _sign_all(
    folder: Path,
    *,
    sealed_key: str = "",
    signers: list[tuple[str, str, bool, str]] = SIGNERS,
) -> Signed:
    url = backends.sqlite_url(folder)
    live.prepare(url, [PETITION, dataclasses.replace(PETITION, slug=EMPTY)])

    asyncio.run(_add_partner(url))
    settings = {"sealing_public_key": sealed_key} if sealed_key else {}
    with (
        live.LiveServer(url, folder, **settings) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as c,
    ):
        emails = _sign(c, signers, 201)
    return Signed(folder, url, emails)


def _sign(c: httpx.Client, signers: list[tuple[str, str, bool, str]], status: int) -> list[str]:
    """Each of `signers` (name, country, ticked the box, partner code) signs through the live
    server of `c`; their emails."""
    emails = []
    for name, country, ticked, partner in signers:
        person = {**live.new_signer(), "name": name}
        live.SIGNERS.append((name, person["email"]))
        emails.append(person["email"])
        asked = c.get(f"/api/petitions/{SLUG}/token", params={"partner": partner})
        body = {"token": asked.json()["token"], **person, "country": country,
                "consent_name_to_target": ticked}  # fmt: skip
        response = c.post(f"/api/petitions/{SLUG}/signatures", json=body)
        assert response.status_code == status, response.text
    return emails


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    return _sign_all(tmp_path_factory.mktemp("delivery"))


def deliver(signed: Signed, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("delivery", *args, "--out", str(out), "--database-url", signed.url, cwd=out.parent)


def blocks(csv_path: Path) -> list[list[list[str]]]:
    """The CSV's blocks (separated by an empty line), each a list of rows, header first."""
    rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8"), newline="")))
    found: list[list[list[str]]] = [[]]
    for row in rows:
        if row:
            found[-1].append(row)
        else:
            found.append([])
    return found


def block(csv_path: Path, first_header: str) -> list[list[str]]:
    return next(b for b in blocks(csv_path) if b[0][0] == first_header)


def test_the_english_pack_names_only_those_who_chose_to_be_named(
    signed: Signed, tmp_path: Path
) -> None:
    out = tmp_path / "pack"
    made = deliver(signed, out, SLUG)
    assert made.returncode == 0, made.stderr
    pdf, sheet = out / f"{SLUG}-delivery.pdf", out / f"{SLUG}-delivery.csv"
    for path in (pdf, sheet):
        assert oct(path.stat().st_mode & 0o777) == "0o600"  # they hold names
    text = text_of(pdf)
    texts = PETITION.texts["en"]
    assert nfkc(texts.title) in text
    assert nfkc(f"To: {texts.target}") in text
    assert "Charitable Foundation Sphere and the Russian LGBT Network" in text
    assert "Opened:" in text and "Made on" in text and "Closed:" not in text
    assert "Signatures: 5" in text and "Goal: 4" in text
    # Every country has fewer than 10 signers here: none has its number (the pack's rule),
    # the total stays exact.
    for country in ("Russia", "Germany", "Egypt", "Kazakhstan"):
        assert f"{country} fewer than 10" in text, country
    assert not re.search(r"(Russia|Germany|Egypt|Kazakhstan) \d", text)
    assert "Countries with fewer than 10 signatures are shown without their number" in text
    assert re.search(r"100% of the goal \(4\): \w{3} \d{1,2}, 20\d\d, \d\d:00 UTC", text)
    for name, _, ticked, _ in SIGNERS:
        assert (nfkc(name) in text) == ticked, name
        assert (name in sheet.read_text(encoding="utf-8")) == ticked, name
    assert "counted but not named, as they did not choose to be on this list: 2" in text
    for email in signed.emails:
        assert email not in text and email not in sheet.read_text(encoding="utf-8")
    assert "@" not in text and "@" not in sheet.read_text(encoding="utf-8")
    assert PARTNER not in text and PARTNER not in sheet.read_text(encoding="utf-8")
    # Nothing of the names on the terminal either.
    assert not any(name in made.stdout + made.stderr for name, *_ in SIGNERS)

    names = block(sheet, "name")
    assert names == [
        ["name", "country", "country_name"],
        ["Анна Петрова", "RU", "Russia"],
        ["محمد حسين", "EG", "Egypt"],
        ["'=1+2 Formula", "DE", "Germany"],  # formula-safe
    ]
    countries = block(sheet, "country")
    assert countries[1:] == [["DE", "Germany", "<10"], ["EG", "Egypt", "<10"],
                             ["KZ", "Kazakhstan", "<10"], ["RU", "Russia", "<10"]]  # fmt: skip
    milestones = block(sheet, "milestone_percent")
    assert [row[:2] for row in milestones[1:]] == [["25", "1"], ["50", "2"], ["75", "3"],
                                                   ["100", "4"]]  # fmt: skip
    assert all(row[2].endswith(":00:00Z") for row in milestones[1:])
    petition = dict(block(sheet, "field")[1:])
    assert petition["signatures"] == "5" and petition["named"] == "3"
    assert petition["counted_not_named"] == "2"


def test_partners_are_named_only_when_asked(signed: Signed, tmp_path: Path) -> None:
    out = tmp_path / "pack"
    assert deliver(signed, out, SLUG, "--with-partners").returncode == 0
    assert f"{PARTNER} 2" in text_of(out / f"{SLUG}-delivery.pdf")
    assert block(out / f"{SLUG}-delivery.csv", "partner")[1:] == [[PARTNER, "2"]]


def test_the_russian_pack(signed: Signed, tmp_path: Path) -> None:
    out = tmp_path / "pack"
    made = deliver(signed, out, SLUG, "--lang", "ru")
    assert made.returncode == 0, made.stderr
    text = text_of(out / f"{SLUG}-delivery.pdf")
    texts = PETITION.texts["ru"]
    assert nfkc(texts.title) in text
    assert nfkc(f"Кому: {texts.target}") in text
    assert nfkc(texts.statement.split(".")[0]) in text
    assert "Подписей: 5" in text and "Подписи по странам" in text
    assert "Россия меньше 10" in text and "Казахстан меньше 10" in text
    assert "Россия 2" not in text and "Казахстан 1" not in text
    assert "Анна Петрова" in text and "Quiet Signer" not in text
    assert "100 % цели (4):" in text


def test_the_arabic_pack_has_its_glyphs(signed: Signed, tmp_path: Path) -> None:
    out = tmp_path / "pack"
    made = deliver(signed, out, SLUG, "--lang", "ar")
    assert made.returncode == 0, made.stderr
    pdf = out / f"{SLUG}-delivery.pdf"
    text = text_of(pdf)
    for word in (*ARABIC_TITLE.split(), *ARABIC_TARGET.split(), "محمد", "حسين"):
        assert nfkc(word) in text, word
    assert "Анна Петрова" in text  # a Cyrillic name in an Arabic pack
    for word in ("أقل", "من"):  # "fewer than 10": the countries have no number
        assert nfkc(word) in text, word
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True,
                           check=True, timeout=60).stdout  # fmt: skip
    assert "NotoSansArabic" in fonts or "NotoNaskhArabic" in fonts
    rows = [line.split() for line in fonts.splitlines()[2:]]
    assert rows and all("yes" in row[-5:-2] for row in rows)  # every font embedded


def test_a_language_the_petition_lacks_is_refused(signed: Signed, tmp_path: Path) -> None:
    made = deliver(signed, tmp_path / "pack", SLUG, "--lang", "de")
    assert made.returncode == 1 and "it has: en, ar, ru" in made.stderr
    assert not (tmp_path / "pack").exists()


def test_a_petition_without_signatures_gives_a_valid_pack(signed: Signed, tmp_path: Path) -> None:
    out = tmp_path / "pack"
    made = deliver(signed, out, EMPTY)
    assert made.returncode == 0, made.stderr
    pdf, sheet = out / f"{EMPTY}-delivery.pdf", out / f"{EMPTY}-delivery.csv"
    assert oct(pdf.stat().st_mode & 0o777) == "0o644"  # no names in it
    text = text_of(pdf)
    assert "Signatures: 0" in text and "not reached yet" in text
    assert block(sheet, "name") == [["name", "country", "country_name"]]
    assert block(sheet, "country") == [["country", "country_name", "signatures"]]


def test_no_database_is_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    made = cli("delivery", SLUG, "--out", str(tmp_path / "o"), "--database-url", url, cwd=tmp_path)
    assert made.returncode == 1 and "nothing was created" in made.stderr
    assert list(tmp_path.iterdir()) == []  # no database, no key file, no pack folder


def test_no_key_file_is_made_beside_the_database(tmp_path: Path) -> None:
    """Offline, like export: the settings load without generating SECRET_KEYS' file (a key
    made on the owner's machine would be one the server never uses)."""
    url = backends.sqlite_url(tmp_path)
    live.prepare(url, [dataclasses.replace(PETITION, slug=EMPTY)])
    before = sorted(p.name for p in tmp_path.iterdir())
    made = cli("delivery", EMPTY, "--out", str(tmp_path / "o"), "--database-url", url,
               cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "o"])


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Signed, Path]]:
    folder = tmp_path_factory.mktemp("sealed-delivery")
    public, secret = sealing.new_key_pair()
    key_file = folder / "owner.secret"
    key_file.write_text(secret)
    yield _sign_all(folder, sealed_key=public, signers=SIGNERS[:2] + SIGNERS[3:4]), key_file


def test_a_sealed_database_needs_the_secret_key_for_names(
    sealed: tuple[Signed, Path], tmp_path: Path
) -> None:
    signed, key_file = sealed
    stored = sqlite_names(signed.url)
    assert stored and all(name == "" for name in stored)  # the names are only in boxes
    out = tmp_path / "pack"
    without = deliver(signed, out, SLUG)
    assert without.returncode == 1 and "--secret-key" in without.stderr
    made = deliver(signed, out, SLUG, "--secret-key", str(key_file))
    assert made.returncode == 0, made.stderr
    text = text_of(out / f"{SLUG}-delivery.pdf")
    assert "Анна Петрова" in text and nfkc("محمد") in text
    assert "Hidden Person" not in text and "Signatures: 3" in text
    _, other = sealing.new_key_pair()
    wrong = tmp_path / "other.secret"
    wrong.write_text(other)
    refused = deliver(signed, tmp_path / "again", SLUG, "--secret-key", str(wrong))
    assert refused.returncode == 1 and "does not open" in refused.stderr


def sqlite_names(url: str) -> list[str]:
    import sqlite3

    from server.store.sqlite import sqlite_path

    with sqlite3.connect(sqlite_path(url)) as db:
        return [r[0] for r in db.execute("SELECT name FROM signatures")]


def test_a_database_sealed_in_place_opens_with_the_secret_key(tmp_path: Path) -> None:
    """Signed in clear, then `petition-widget seal`: the boxes it writes are the ones the pack
    opens (main's owner box, the domain under the EmailHasher)."""
    (tmp_path / "db").mkdir()
    signed = _sign_all(tmp_path / "db", signers=SIGNERS[:2] + SIGNERS[3:4])
    public, secret = sealing.new_key_pair()
    key_file = tmp_path / "owner.secret"
    key_file.write_text(secret)
    env = {"SEALING_PUBLIC_KEY": public, "EMAIL_HASH_KEY": live.EMAIL_HASH_KEY}
    done = cli("seal", "--database-url", signed.url, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert all(name == "" for name in sqlite_names(signed.url))
    out = tmp_path / "pack"
    assert "--secret-key" in deliver(signed, out, SLUG).stderr
    made = deliver(signed, out, SLUG, "--secret-key", str(key_file))
    assert made.returncode == 0, made.stderr
    text = text_of(out / f"{SLUG}-delivery.pdf")
    assert "Анна Петрова" in text and nfkc("محمد") in text
    assert "Hidden Person" not in text and "Signatures: 3" in text


def test_sealed_and_confirmed_by_email_on_both_engines(tmp_path: Path, database_url: str) -> None:
    """Main's sealed data end to end: each submission sealed at once into the owner's box, its
    mail's address and tokens sealed under the EmailHasher in the outbox (opened here as the
    mail job opens them), the pending row and its choice moved into signatures by the
    confirmation, and the pack opening the boxes with --secret-key."""
    public, secret = sealing.new_key_pair()
    key_file = tmp_path / "owner.secret"
    key_file.write_text(secret)
    confirmed = dataclasses.replace(PETITION, confirmation="email")
    live.prepare(database_url, [confirmed])
    asyncio.run(_add_partner(database_url))
    server = live.LiveServer(database_url, tmp_path, sealing_public_key=public,
                             smtp_url=f"smtp://127.0.0.1:{live.free_port()}",
                             mail_from="p@example.org")  # fmt: skip
    server.env["BASE_URL"] = server.base_url
    with server, httpx.Client(base_url=server.base_url, timeout=30) as c:
        _sign(c, SIGNERS[:1] + SIGNERS[3:4], 202)
        for mail in asyncio.run(_queued_mails(database_url)):
            opened = live.opened(mail)
            assert "@" not in json.dumps(mail)  # the address travels sealed
            assert c.post(f"/confirm/{opened['confirm']}").status_code == 200
    out = tmp_path / "pack"
    signed = Signed(tmp_path, database_url, [])
    without = deliver(signed, out, SLUG)
    assert without.returncode == 1 and "--secret-key" in without.stderr
    made = deliver(signed, out, SLUG, "--secret-key", str(key_file), "--with-partners")
    assert made.returncode == 0, made.stderr
    text = text_of(out / f"{SLUG}-delivery.pdf")
    assert "Анна Петрова" in text and "Hidden Person" not in text
    assert "Signatures: 2" in text and f"{PARTNER} 2" in text
    assert block(out / f"{SLUG}-delivery.csv", "name")[1:] == [["Анна Петрова", "RU", "Russia"]]


async def _add_partner(url: str) -> None:
    storage = Storage(url)
    await storage.connect()
    try:
        pid = await storage.petition_id(SLUG)
        assert pid is not None
        await storage.add_partner(pid, "allies", PARTNER)
    finally:
        await storage.disconnect()


async def _queued_mails(url: str) -> list[dict[str, Any]]:
    storage = Storage(url)
    await storage.connect()
    try:
        rows = await storage.database.fetch_all(
            "SELECT payload FROM outbox WHERE topic = 'mail' ORDER BY id"
        )
        return [json.loads(r[0]) for r in rows]
    finally:
        await storage.disconnect()


def test_retention_keeps_every_figure_of_the_pack_and_takes_only_the_names(
    tmp_path: Path, database_url: str
) -> None:
    """The pack made before `retention run` and after it, on both engines, from a sealed
    server's signers: the totals, the countries (one past the pack's threshold of 10, so a
    number shows), the partners and the milestones stay exactly as they were; only the list
    of names goes, those signers then counted but not named (docs: make the pack before)."""
    public, secret = sealing.new_key_pair()
    key_file = tmp_path / "owner.secret"
    key_file.write_text(secret)
    live.prepare(database_url, [dataclasses.replace(PETITION, retention_days=1)])
    asyncio.run(_add_partner(database_url))
    signers = SIGNERS + [(f"Many Signer {n}", "RU", n % 2 == 0, "allies") for n in range(10)]
    with (
        live.LiveServer(database_url, tmp_path, sealing_public_key=public) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as c,
    ):
        _sign(c, signers, 201)
    close_days_ago(database_url, 2, SLUG)
    signed = Signed(tmp_path, database_url, [])

    def made(folder: str) -> dict[str, list[list[str]]]:
        out = tmp_path / folder
        done = deliver(signed, out, SLUG, "--secret-key", str(key_file), "--with-partners")
        assert done.returncode == 0, done.stderr
        return {b[0][0]: b for b in blocks(out / f"{SLUG}-delivery.csv")}

    before = made("before")
    retained = cli("retention", "run", "--database-url", database_url, cwd=tmp_path,
                   env={"EMAIL_HASH_KEY": live.EMAIL_HASH_KEY})  # fmt: skip
    assert retained.returncode == 0, retained.stderr
    assert f"{len(signers)} signature(s) with personal data" in retained.stdout
    after = made("after")

    named = sum(ticked for _, _, ticked, _ in signers)
    assert len(before["name"]) == 1 + named  # the list, before
    assert after["name"] == [["name", "country", "country_name"]]  # retention took the names
    for figures in ("country", "partner", "milestone_percent"):
        assert after[figures] == before[figures], figures
    assert ["RU", "Russia", "12"] in after["country"]  # a figure the pack shows, kept
    assert after["partner"][1:] == [[PARTNER, "12"]]
    fields = {"before": dict(before["field"][1:]), "after": dict(after["field"][1:])}
    changed = {"generated_at", "named", "counted_not_named"}
    for field, value in fields["before"].items():
        if field not in changed:
            assert fields["after"][field] == value, field
    assert fields["before"]["signatures"] == fields["after"]["signatures"] == str(len(signers))
    assert fields["before"]["closed_at"] != ""
    assert (fields["before"]["named"], fields["before"]["counted_not_named"]) == (
        str(named), str(len(signers) - named)
    )  # fmt: skip
    assert (fields["after"]["named"], fields["after"]["counted_not_named"]) == (
        "0", str(len(signers))
    )  # fmt: skip
