"""`petition-widget webhooks`: add (id and secret shown once, the URL's rules said), list,
rotate, test and remove, run in-process on both engines."""

from __future__ import annotations

import asyncio
import io
import re

import pytest

from server.domain import sealing
from server.store.storage import Storage
from tests import test_cli_owner
from tests.test_cli_owner import SLUG, Run

#: The in-process runner of the owner's command tests, shared.
cli = test_cli_owner.run

SECRET = re.compile(r"\bwhsec_[A-Za-z0-9+/=]{40,}")


def test_add_prints_the_id_and_the_secret_once_and_list_rotate_test_remove(cli: Run) -> None:
    code, out, err = cli("webhooks", "add", SLUG, "http://127.0.0.1:9/hook", "--allow-http",
                         "--allow-private")  # fmt: skip
    assert code == 0, err
    (secret,) = SECRET.findall(out)
    assert "Added webhook endpoint 1 for the owner" in out
    code, out, _ = cli("webhooks", "list")
    assert code == 0 and "http://127.0.0.1:9/hook" in out and secret not in out
    assert "enabled" in out
    code, out, _ = cli("webhooks", "rotate", "1")
    (new,) = SECRET.findall(out)
    assert code == 0 and new != secret and "24 hours" in out
    code, out, _ = cli("webhooks", "test", "1")
    assert code == 0 and "webhook.test" in out
    code, out, _ = cli("webhooks", "list")
    assert out.splitlines()[1].split()[5] == "1"  # one event waits
    assert cli("webhooks", "remove", "1")[0] == 0
    code, _, err = cli("webhooks", "remove", "1")
    assert code == 1 and "no webhook endpoint 1" in err


def test_test_is_refused_for_an_osdi_endpoint_and_says_what_to_do(cli: Run) -> None:
    """An OSDI endpoint gets only `signature.counted`: a test event would enter a made-up
    person in the CRM, so none is queued, and the refusal says how to try it instead."""
    for url, extra in (
        ("http://127.0.0.1:9/std", ()),
        ("http://127.0.0.1:9/osdi", ("--format", "osdi")),
    ):
        code, _, err = cli("webhooks", "add", SLUG, url, "--allow-http", "--allow-private", *extra)
        assert code == 0, err
    code, out, err = cli("webhooks", "test", "2")
    assert code == 1 and out == ""
    assert "endpoint 2 is an OSDI endpoint: it receives only signature.counted" in err
    assert "sign the petition with an address of your own" in err
    code, out, _ = cli("webhooks", "test", "1")
    assert code == 0 and "Queued a webhook.test event for endpoint 1" in out
    code, out, _ = cli("webhooks", "list")
    waiting = {line.split()[0]: line.split()[5] for line in out.splitlines()[1:]}
    assert waiting == {"1": "1", "2": "0"}  # the standard one's test event only
    code, _, err = cli("webhooks", "test", "3")
    assert code == 1 and "no webhook endpoint 3" in err


def test_redeliver_tries_every_failed_event_of_an_endpoint_again(cli: Run) -> None:
    code, _, err = cli("webhooks", "add", SLUG, "http://127.0.0.1:9/hook", "--allow-http",
                       "--allow-private")  # fmt: skip
    assert code == 0, err
    for _ in range(3):
        assert cli("webhooks", "test", "1")[0] == 0

    async def fail_two() -> None:
        storage = Storage(cli.url)
        await storage.connect()
        async with storage.write() as tx:
            await tx.execute(
                "UPDATE outbox SET failed_at = 1 WHERE id IN "
                "(SELECT id FROM outbox WHERE endpoint_id = 1 ORDER BY id LIMIT 2)"
            )
        await storage.disconnect()

    asyncio.run(fail_two())
    code, out, _ = cli("webhooks", "list")
    assert out.splitlines()[1].split()[5:7] == ["1", "2"]  # waiting, failed
    code, out, _ = cli("webhooks", "redeliver", "1")
    assert code == 0 and "2 failed event(s) of endpoint 1 will be tried again" in out
    code, out, _ = cli("webhooks", "list")
    assert out.splitlines()[1].split()[5:7] == ["3", "0"]
    code, _, err = cli("webhooks", "redeliver", "9")
    assert code == 1 and "no webhook endpoint 9" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["http://crm.example.org/hook"],
            "http: URLs are refused: use https://, or add --allow-http",
        ),
        (["ftp://crm.example.org/"], "must start with https://"),
        (["https://user:pw@crm.example.org/"], "may not hold a user or password"),
        (["https://127.0.0.1/hook"], "a loopback address; loopback, private and link-local"),
        (["https://10.1.2.3/hook"], "10.1.2.3, a private address"),
        (["https://169.254.169.254/latest"], "a link-local address"),
        (["https://crm.example.org/", "--partner", "nope"], "no partner 'nope'"),
        (["https://crm.example.org/", "--public-key", "short"], "--public-key: a public key"),
        (["https://crm.example.org/", "--osdi-token-stdin"], "only for --format osdi"),
    ],
)
def test_add_refusals_say_the_rule(cli: Run, args: list[str], says: str) -> None:
    code, out, err = cli("webhooks", "add", SLUG, *args)
    assert code == 1 and says in err, err
    assert "whsec_" not in out


def test_osdi_token_never_from_the_command_line_and_osdi_refused_when_sealing(
    cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit):  # there is no such option
        cli("webhooks", "add", SLUG, "https://crm.example.org/", "--osdi-token", "t")
    monkeypatch.setenv("CRM_TOKEN", "")
    code, _, err = cli("webhooks", "add", SLUG, "https://127.0.0.1/", "--allow-private",
                       "--format", "osdi", "--osdi-token-from-env", "CRM_TOKEN")  # fmt: skip
    assert code == 1 and "$CRM_TOKEN is empty or unset" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("secret-token\n"))
    code, out, err = cli("webhooks", "add", SLUG, "https://127.0.0.1/", "--allow-private",
                         "--format", "osdi", "--osdi-token-stdin")  # fmt: skip
    assert code == 0, err
    assert "secret-token" not in out
    public, _ = sealing.new_key_pair()
    monkeypatch.setenv("SEALING_PUBLIC_KEY", public)
    code, _, err = cli("webhooks", "add", SLUG, "https://127.0.0.1/", "--allow-private",
                       "--format", "osdi")  # fmt: skip
    assert code == 1 and "--format osdi is refused with sealing on" in err
