"""The count badge: its drawing (pure) and its endpoint on a live server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx

from server.web import badge
from tests.support import live

SLUG = "save-russian-lgbt-network"
SVG = "{http://www.w3.org/2000/svg}"


def test_badge_says_count_and_goal() -> None:
    svg = ET.fromstring(badge.render(12_345, 50_000))
    assert svg.get("aria-label") == "12,345 signed of 50,000"
    assert svg.findtext(f"{SVG}title") == "12,345 signed of 50,000"
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert texts == ["12,345 signed", "12,345 signed", "of 50,000", "of 50,000"]  # shadow, text


def test_badge_width_fits_its_text() -> None:
    short, long = ET.fromstring(badge.render(1, 10)), ET.fromstring(badge.render(1_234_567, 10**9))
    assert int(short.attrib["width"]) < int(long.attrib["width"])
    rects = long.findall(f"{SVG}g/{SVG}rect")
    assert sum(int(r.attrib["width"]) for r in rects) == int(long.attrib["width"])


def test_badge_in_russian_and_when_closed() -> None:
    svg = ET.fromstring(badge.render(12_345, 50_000, lang="ru", is_open=False))
    assert svg.get("aria-label") == "Подписали: 12\u00a0345 из 50\u00a0000 · закрыта"
    assert badge.CLOSED_COLOUR in badge.render(1, 2, is_open=False)
    assert ET.fromstring(badge.render(1, 2, lang="xx")).get("aria-label") == "1 signed of 2"


def test_badge_endpoint_caches_and_counts(client: httpx.Client) -> None:
    response = client.get(f"/badge/{SLUG}.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["cache-control"] == "public, max-age=60, stale-while-revalidate=600"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    count = client.get(f"/api/petitions/{SLUG}").json()["signatures"]
    assert f"{count:,} signed" in response.text
    etag = response.headers["etag"]
    again = client.get(f"/badge/{SLUG}.svg", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""

    token = client.get(f"/api/petitions/{SLUG}/token").json()["token"]
    signed = client.post(f"/api/petitions/{SLUG}/signatures", json={"token": token,
                         **live.new_signer()})  # fmt: skip
    after = client.get(f"/badge/{SLUG}.svg", headers={"If-None-Match": etag})
    assert after.status_code == 200 and f"{signed.json()['signatures']:,} signed" in after.text
    assert "Подписали" in client.get(f"/badge/{SLUG}.svg?lang=ru").text


def test_badge_for_an_unknown_petition(client: httpx.Client) -> None:
    response = client.get("/badge/nothing-here.svg")
    assert response.status_code == 404
    assert client.get(f"/badge/{SLUG}.png").status_code == 404
