"""The box "Show my name on the list delivered to {target}" on a live server, on both engines:
shown only where the petition file offers it, unticked; posted by the JSON API and the form
without JavaScript; kept as a consent flag (only where the box was shown); and in the owner's
export as `consent_name_to_target`."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from collections.abc import Iterator

import httpx
import pytest

from server.domain import access_keys
from server.store.storage import Storage
from tests.support import backends, live, petitions
from tests.web.test_widget import HTML, form_fields, get_page, tree

HIDDEN = petitions.example()
OFFERED = dataclasses.replace(HIDDEN, slug="named-list", name_to_target="optional")
BOX = 'name="consent_name_to_target"'


@dataclasses.dataclass
class World:
    server: live.LiveServer
    owner: access_keys.Key


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("named")
    if request.param == "sqlite":
        url = backends.sqlite_url(folder)
    else:
        url = request.getfixturevalue("postgres").create()
    live.prepare(url, [HIDDEN, OFFERED])

    async def owner_key() -> access_keys.Key:
        storage = Storage(url)
        await storage.connect()
        try:
            key = access_keys.generate(access_keys.OWNER)
            await storage.add_access_key(key.id, access_keys.OWNER, key.digest, "test")
            return key
        finally:
            await storage.disconnect()

    key = asyncio.run(owner_key())
    with live.LiveServer(url, folder) as server:
        yield World(server, key)


@pytest.fixture
def client(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.server.base_url, timeout=30) as c:
        yield c


def sign(c: httpx.Client, slug: str, ticked: object) -> dict[str, str]:
    person = live.new_signer()
    token = c.get(f"/api/petitions/{slug}/token").json()["token"]
    body = {"token": token, **person, "consent_name_to_target": ticked}
    response = c.post(f"/api/petitions/{slug}/signatures", json=body)
    assert response.status_code == 201, response.text
    return person


def exported(world: World, slug: str) -> dict[str, str]:
    """Email → consent_name_to_target, from the owner's CSV export."""
    with httpx.Client(base_url=world.server.base_url, timeout=30) as c:
        assert c.post("/admin/login", data={"key": world.owner.text}).status_code == 303
        response = c.get(f"/admin/petitions/{slug}/export.csv")
        assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    return {r["email"]: r["consent_name_to_target"] for r in rows}


def test_the_box_is_shown_unticked_only_where_the_petition_offers_it(
    client: httpx.Client,
) -> None:
    _, offered = get_page(client, f"/widget/{OFFERED.slug}")
    box = offered.by_id("pw-c-target")
    assert box.attrs["name"] == "consent_name_to_target" and not box.has("checked")
    label = next(
        n for n in offered.iter() if n.tag == "label" and n.attrs.get("for") == "pw-c-target"
    )
    assert label.text() == "Show my name on the list delivered to the Russian government"
    assert BOX not in client.get(f"/widget/{HIDDEN.slug}").text
    # In Russian, with the English original beside the unreviewed translation.
    _, russian = get_page(client, f"/widget/{OFFERED.slug}", lang="ru")
    ru_label = next(
        n for n in russian.iter() if n.tag == "label" and n.attrs.get("for") == "pw-c-target"
    )
    assert ru_label.text().startswith("Указать моё имя в списке")
    assert "Show my name on the list delivered to" in ru_label.text()


def test_a_ticked_box_is_kept_and_exported(world: World, client: httpx.Client) -> None:
    yes = sign(client, OFFERED.slug, True)
    no = sign(client, OFFERED.slug, False)
    unsaid = sign(client, OFFERED.slug, None)
    flags = exported(world, OFFERED.slug)
    assert flags[yes["email"]] == "true"
    assert flags[no["email"]] == "false" and flags[unsaid["email"]] == "false"


def test_a_box_that_was_not_shown_cannot_be_ticked(world: World, client: httpx.Client) -> None:
    person = sign(client, HIDDEN.slug, True)
    assert exported(world, HIDDEN.slug)[person["email"]] == "false"


def test_without_javascript_the_box_is_posted_and_kept_across_errors(
    world: World, client: httpx.Client
) -> None:
    path = f"/api/petitions/{OFFERED.slug}/signatures"
    _, doc = get_page(client, f"/widget/{OFFERED.slug}")
    typed = {**form_fields(doc), "name": "", "email": "x", "consent_name_to_target": "on"}
    refused = client.post(path, data=typed, headers=HTML)
    assert refused.status_code == 422
    again = tree(refused.text)
    assert again.by_id("pw-c-target").has("checked")  # the choice survives the round trip
    person = live.new_signer()
    signed = client.post(path, data={**form_fields(again), **person}, headers=HTML)
    assert signed.status_code == 303, signed.text  # Post/Redirect/Get to the thank-you page
    assert exported(world, OFFERED.slug)[person["email"]] == "true"


def test_a_malformed_value_is_a_field_error(client: httpx.Client) -> None:
    token = client.get(f"/api/petitions/{OFFERED.slug}/token").json()["token"]
    body = {"token": token, **live.new_signer(), "consent_name_to_target": "perhaps"}
    response = client.post(f"/api/petitions/{OFFERED.slug}/signatures", json=body)
    assert response.status_code == 422
    assert "consent_name_to_target" in response.json()["errors"]
