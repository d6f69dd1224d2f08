"""The demo's mail page: the app as the demo builds it, its mail going over real SMTP to the
mail catcher, and `/demo/mail` listing what arrived with its links as anchors, escaped, only
to this machine, and only in the demo."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.types import Scope

from server import cli, wiring
from server import settings as settings_module
from server.web import demo, mailcatcher
from tests.support import backends, live, petitions

SLUG = petitions.example().slug


@pytest.fixture
def catcher() -> Iterator[mailcatcher.MailCatcher]:
    mailcatcher.MAILBOX.clear()
    running = mailcatcher.MailCatcher(mailcatcher.MAILBOX)
    running.start_in_thread()
    yield running
    running.stop_thread()
    mailcatcher.MAILBOX.clear()


def demo_settings(
    url: str, smtp_url: str, port: int, demo_mode: bool = True
) -> settings_module.Settings:
    environ = {
        "DATABASE_URL": url,
        "SECRET_KEYS": live.SECRET,
        "PORT": str(port),
        "TOKEN_MIN_AGE": "0",
        "RATE_SIGN_PER_MINUTE": "0",
        "RATE_CLIENT_PER_MINUTE": "0",
    }
    loaded = settings_module.load(environ, demo=demo_mode)
    return cli.demo_mail_settings(loaded, smtp_url)


@contextlib.contextmanager
def served(
    tmp_path: Path, catcher: mailcatcher.MailCatcher, demo_mode: bool = True
) -> Iterator[httpx.Client]:
    """The app as `petition-widget demo` builds it, served by uvicorn in this process (as the
    demo does), on 127.0.0.1, its mail going to `catcher`: a client for it."""
    url = backends.sqlite_url(tmp_path)
    live.prepare(url, [petitions.example("email")])
    port = live.free_port()
    app = wiring.create_app(demo_settings(url, catcher.url, port, demo_mode))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, name="demo-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(40)


def wait_for_mail(count: int, timeout: float = 15.0) -> list[mailcatcher.CaughtMail]:
    deadline = time.monotonic() + timeout
    while len(mailcatcher.MAILBOX.mails()) < count:
        assert time.monotonic() < deadline, "no mail reached the catcher"
        time.sleep(0.05)
    return mailcatcher.MAILBOX.mails()


def test_a_signature_in_the_demo_is_confirmed_from_the_mail_page(
    tmp_path: Path, catcher: mailcatcher.MailCatcher
) -> None:
    with served(tmp_path, catcher) as client:
        page = client.get(demo.MAIL_PATH)
        assert page.status_code == 200 and "No mail yet" in page.text
        token = client.get(f"/api/petitions/{SLUG}/token").json()["token"]
        signer = live.new_signer("demo")
        signed = client.post(f"/api/petitions/{SLUG}/signatures", json={"token": token, **signer})
        assert signed.status_code in (201, 202), signed.text
        (caught,) = wait_for_mail(1)
        assert caught.to == signer["email"]
        confirm = next(link for link in caught.links if "/confirm/" in link)
        assert any("/withdraw/" in link for link in caught.links)

        page = client.get(demo.MAIL_PATH)
        assert page.status_code == 200
        assert f'<a href="{confirm}">{confirm}</a>' in page.text
        assert caught.subject in page.text
        assert "<script" not in page.text
        headers = page.headers
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"

        # Following the link confirms the signature: the demo's whole path, without a mailbox.
        assert confirm.startswith(str(client.base_url))
        assert httpx.get(confirm).status_code == 200
        assert httpx.post(confirm).status_code == 200
        assert client.get(f"/api/petitions/{SLUG}").json()["signatures"] == 1


def test_the_mail_page_escapes_what_it_shows() -> None:
    hostile = EmailMessage()
    hostile["From"] = "x@example.net"
    hostile["To"] = '"<b>bold</b>" <zt.hostile@example.org>'
    hostile["Subject"] = "<script>alert(1)</script>"
    hostile.set_content('Go to https://example.net/confirm/"><script>x</script> & <i>now</i>\n')
    box = mailcatcher.Mailbox()
    box.add(hostile.as_bytes())
    page = demo.mail_page(box.mails())
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert (
        '<a href="https://example.net/confirm/&quot;&gt;&lt;script&gt;x&lt;/script&gt;' not in page
    )
    assert '<a href="https://example.net/confirm/">' in page  # the URL ends where quotes begin
    assert "&amp; &lt;i&gt;now&lt;/i&gt;" in page


def test_the_mailbox_keeps_the_last_hundred_newest_first() -> None:
    box = mailcatcher.Mailbox()
    for n in range(mailcatcher.MAX_KEPT + 5):
        message = EmailMessage()
        message["To"], message["Subject"] = "zt.box@example.org", f"mail {n}"
        message.set_content(f"https://example.net/withdraw/{n}\n")
        box.add(message.as_bytes())
    mails = box.mails()
    assert len(mails) == mailcatcher.MAX_KEPT
    assert mails[0].subject == f"mail {mailcatcher.MAX_KEPT + 4}" and mails[-1].subject == "mail 5"
    assert mails[0].links == (f"https://example.net/withdraw/{mailcatcher.MAX_KEPT + 4}",)


def test_the_mail_page_is_only_in_the_demo(
    tmp_path: Path, catcher: mailcatcher.MailCatcher
) -> None:
    with served(tmp_path, catcher, demo_mode=False) as client:
        assert client.get(demo.MAIL_PATH).status_code == 404


@pytest.mark.parametrize(
    ("address", "shown"),
    [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("203.0.113.7", False), ("::ffff:203.0.113.7", False), ("10.0.0.2", False), ("", False)],
)  # fmt: skip
def test_the_mail_page_answers_only_this_machine(address: str, shown: bool) -> None:
    """Only a scope's client address (no packet goes anywhere): a visitor from elsewhere, were
    the demo listening on another address, sees no mails."""
    mailcatcher.MAILBOX.clear()
    client = (address, 40_000) if address else None
    scope: Scope = {
        "type": "http", "method": "GET", "path": demo.MAIL_PATH, "headers": [],
        "query_string": b"", "client": client,
    }  # fmt: skip
    response = asyncio.run(demo.demo_mail(Request(scope)))
    assert response.status_code == (200 if shown else 403)
    assert response.headers["cache-control"] == "no-store"
