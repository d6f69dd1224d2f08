"""The webhook rules, pure: who receives what, the Standard Webhooks signature (checked with
the `standardwebhooks` library), the OSDI record and its name split, the URL and address
rules, and milestones."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook

from server.domain import webhooks as wh

OWNER = wh.Target(1, None)
NGO = wh.Target(2, 7)
OSDI = wh.Target(3, None, wh.OSDI)


def facts(**changes: object) -> wh.SignatureFacts:
    base: dict[str, object] = dict(
        signature_id="ref1", petition="p", partner_id=7, partner_code="ngo", signed_at=0,
        confirmed_at=None, country="KZ", lang="kk", consent_organiser=False,
        consent_partner=False, consent_version="v", consent_text="t", name="Ann Lee",
        email="ann@example.org",
    )  # fmt: skip
    base.update(changes)
    return wh.SignatureFacts(**base)  # type: ignore[arg-type]


def test_who_receives_what() -> None:
    nobody = facts()
    assert wh.counted_data(NGO, nobody) is None  # not its consenting signer
    owner = wh.counted_data(OWNER, nobody)
    assert owner is not None and "name" not in owner and "email" not in owner
    assert wh.counted_data(OSDI, nobody) is None  # an OSDI record needs an address
    ticked = facts(consent_partner=True)
    ngo = wh.counted_data(NGO, ticked)
    assert ngo is not None and ngo["email"] == "ann@example.org"
    assert wh.counted_data(wh.Target(4, 8), ticked) is None  # another partner
    sealed = facts(consent_organiser=True, name=None, email=None, boxes={1: "BOX"})
    data = wh.counted_data(OWNER, sealed)
    assert data is not None and data["sealed"] == "BOX" and "email" not in data
    assert wh.withdrawn_data(
        NGO, signature_id="r", petition="p", partner_id=7, partner_code="ngo",
        consent_partner=False, reason="withdrawn",
    ) is None  # fmt: skip
    with pytest.raises(ValueError, match="unknown reason"):
        wh.withdrawn_data(OWNER, signature_id="r", petition="p", partner_id=None,
                          partner_code=None, consent_partner=False, reason="whim")  # fmt: skip


def test_an_osdi_endpoint_gets_no_plain_event_and_no_test() -> None:
    for type_ in (wh.MILESTONE, wh.CLOSED, wh.TEST):
        assert wh.plain_data(OSDI, type_, {"petition": "p"}) is None
        assert wh.plain_data(OWNER, type_, {"petition": "p"}) == {"petition": "p"}
    assert wh.refuses_test(OWNER) is None and wh.refuses_test(NGO) is None
    refusal = wh.refuses_test(OSDI)
    assert refusal is not None and "receives only signature.counted" in refusal


def test_signatures_verify_with_the_reference_library_also_while_rotating() -> None:
    old, new = wh.new_secret(), wh.new_secret()
    body = wh.body(wh.TEST, 0, {"x": "ü"}, 3)
    now = int(time.time())
    header = wh.signature_header([new, old], "msg_1", now, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header}
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers)["data"] == {"x": "ü"}
    assert header.count("v1,") == 2 and " " in header


@pytest.mark.parametrize(
    ("name", "given", "family"),
    [
        ("Ann Lee", "Ann", "Lee"),
        ("  Maria  de la   Cruz ", "Maria de la", "Cruz"),
        ("Madonna", "Madonna", ""),
        ("", "", ""),
        ("Абай Кунанбаев", "Абай", "Кунанбаев"),
    ],
)
def test_the_name_split_rule(name: str, given: str, family: str) -> None:
    assert wh.split_name(name) == (given, family)


def test_the_osdi_record() -> None:
    record = wh.osdi_record(
        {
            "name": "Ann Lee",
            "email": "a@example.org",
            "country": "KZ",
            "signed_at": "T",
            "partner_code": "ngo",
        }
    )
    assert record == {
        "person": {"given_name": "Ann", "family_name": "Lee",
                   "email_addresses": [{"address": "a@example.org", "primary": True}],
                   "postal_addresses": [{"country": "KZ"}]},
        "action_date": "T", "referrer_data": {"source": "ngo"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("url", "allow_http", "says"),
    [
        ("http://x.example/", False, "--allow-http"),
        ("https://a:b@x.example/", False, "user or password"),
        ("https://x.example/#f", False, "#fragment"),
        ("https:///path", False, "no host"),
        ("https://bücher.example/", False, "ASCII"),
        ("https://x.example:99999/", False, "cannot be parsed"),
        ("https://x.example/ a", False, "spaces"),
        ("gopher://x.example/", True, "must start with https://"),
    ],
)
def test_url_rules(url: str, allow_http: bool, says: str) -> None:
    with pytest.raises(wh.BadEndpoint, match=says):
        wh.check_url(url, allow_http=allow_http)


def test_a_good_url() -> None:
    url = wh.check_url("https://CRM.example.org:8443/hooks?x=1", allow_http=False)
    assert (url.host, url.port, url.target) == ("crm.example.org", 8443, "/hooks?x=1")
    assert wh.check_url("http://[::1]/", allow_http=True).host == "::1"


@pytest.mark.parametrize(
    ("address", "kind"),
    [("127.0.0.1", "loopback"), ("10.0.0.5", "private"), ("192.168.1.1", "private"),
     ("169.254.169.254", "link-local"), ("::1", "loopback"), ("fe80::1", "link-local"),
     ("::ffff:10.0.0.1", "private"), ("fd00::1", "private")],
)  # fmt: skip
def test_private_addresses_are_refused_unless_allowed(address: str, kind: str) -> None:
    problem = wh.address_problem(address, allow_private=False)
    assert problem is not None and f"a {kind} address" in problem
    assert "--allow-private" in problem
    assert wh.address_problem(address, allow_private=True) is None


def test_public_and_never_addresses() -> None:
    assert wh.address_problem("93.184.216.34", allow_private=False) is None
    assert wh.address_problem("0.0.0.0", allow_private=True) is not None
    assert wh.address_problem("224.0.0.1", allow_private=True) is not None


def test_milestones() -> None:
    assert wh.reached(0, 10) == []
    assert wh.reached(3, 10) == [25]
    assert wh.reached(10, 10) == [25, 50, 75, 100]
    assert wh.reached(5, 0) == []
    assert wh.threshold(10, 25) == 3
