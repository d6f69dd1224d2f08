"""The public read API on a live server, on both backends."""

from __future__ import annotations

import httpx

SLUG = "save-russian-lgbt-network"


def test_petition_shows_seed_with_exact_count(client: httpx.Client) -> None:
    response = client.get(f"/api/petitions/{SLUG}")
    assert response.status_code == 200
    data = response.json()
    assert data["slug"] == SLUG
    assert data["goal"] == 50_000
    assert data["signatures"] == 0
    assert data["status"] == "open"
    assert data["title"] == "The work of the Russian LGBT+ movement is at risk"
    assert data["target"] == "the Russian government"
    assert data["lang"] == "en" and data["languages"] == ["en", "ru"]
    assert data["updated_at"].endswith("Z")
    assert [u["date"] for u in data["updates"]] == ["2022-04-28", "2022-04-21"]
    assert "foreign agents" in data["legal_notice"]
    assert "<script" not in response.text


def test_russian_translation(client: httpx.Client) -> None:
    data = client.get(f"/api/petitions/{SLUG}", params={"lang": "ru"}).json()
    assert data["lang"] == "ru"
    assert data["title"] == "Работа российского ЛГБТ+ движения под угрозой"
    assert data["target"] == "Правительству России"


def test_accept_language_picks_translation(client: httpx.Client) -> None:
    headers = {"Accept-Language": "ru-RU,ru;q=0.9"}
    data = client.get(f"/api/petitions/{SLUG}", headers=headers).json()
    assert data["lang"] == "ru"


def test_unknown_language_falls_back_to_the_original(client: httpx.Client) -> None:
    assert client.get(f"/api/petitions/{SLUG}", params={"lang": "xx"}).json()["lang"] == "en"


def test_caching_headers_and_not_modified(client: httpx.Client) -> None:
    first = client.get(f"/api/petitions/{SLUG}")
    assert first.headers["access-control-allow-origin"] == "*"
    assert first.headers["x-content-type-options"] == "nosniff"
    assert "max-age=" in first.headers["cache-control"]
    etag = first.headers["etag"]
    second = client.get(f"/api/petitions/{SLUG}", headers={"If-None-Match": etag})
    assert second.status_code == 304
    assert second.content == b""
    assert second.headers["etag"] == etag
    other_lang = client.get(f"/api/petitions/{SLUG}?lang=ru", headers={"If-None-Match": etag})
    assert other_lang.status_code == 200


def test_unknown_petition_is_json_404(client: httpx.Client) -> None:
    response = client.get("/api/petitions/no-such-petition")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_unknown_route_and_method_are_json(client: httpx.Client) -> None:
    missing = client.get("/api/nothing/here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.delete(f"/api/petitions/{SLUG}")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert "GET" in wrong.headers["allow"]


def test_preflight_allows_any_origin(client: httpx.Client) -> None:
    response = client.options(
        f"/api/petitions/{SLUG}/signatures",
        headers={
            "Origin": "https://partner.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "Content-Type" in response.headers["access-control-allow-headers"]


def test_token_endpoint(client: httpx.Client) -> None:
    response = client.get(f"/api/petitions/{SLUG}/token", params={"partner": "ngo", "lang": "ru"})
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"token", "expires_in"}
    assert data["expires_in"] == 7200
    assert response.headers["cache-control"] == "no-store"
    assert client.get("/api/petitions/nope/token").status_code == 404


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "oldest_unsent_mail_s": None}
    assert response.headers["x-content-type-options"] == "nosniff"
    described = client.get("/openapi.json")
    assert described.headers["x-content-type-options"] == "nosniff"
