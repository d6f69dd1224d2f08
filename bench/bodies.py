"""Pre-issued signatures: one valid form token and one distinct signer per request body.

The load tool sends each line of the file once, so every request is a new person with a fresh
token, as in a real surge. The same file serves every scenario: each runs on a fresh database,
where no nonce or email has been seen yet. Tokens are issued with the server's own
`FormTokens` and the key the bench gives the server, so they are exactly what the widget holds.
"""

from __future__ import annotations

import json
from pathlib import Path

from server.domain.form_tokens import FormTokens

COUNTRIES = ("DE", "FR", "RU", "GB", "", "US", "UA", "")


def write(
    path: Path, count: int, *, secret: str, slug: str, lifetime: int, partner: str = ""
) -> int:
    """Write `count` JSON bodies, one a line, as the widget posts them; returns bytes written.
    With `partner`, every form is that partner's, and every other signer ticks its box (on a
    sealed server each of those gets a partner copy, when the partner has a key)."""
    tokens = FormTokens([secret], lifetime=lifetime, min_age=0)
    size = 0
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            body = {
                "token": tokens.issue(slug, partner, "en"),
                "lang": "en",
                "name": f"Bench Signer {i}",
                "email": f"bench.signer.{i}@example.org",
                "country": COUNTRIES[i % len(COUNTRIES)],
                "website": "",
                "consent_organiser": i % 3 == 0,
                "consent_partner": bool(partner) and i % 2 == 0,
            }
            line = json.dumps(body, separators=(",", ":")) + "\n"
            size += len(line)
            out.write(line)
    return size
