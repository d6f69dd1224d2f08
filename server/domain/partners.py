"""Partner codes: the short public names that tie a signature to the partner whose page it came
through. They travel in embed snippets, so they are forgiving on the way in (case, spaces) and
strict in what they keep."""

from __future__ import annotations

import dataclasses
import re
import unicodedata

CODE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
INVALID_CODE = "(invalid)"  # what is recorded when a snippet carries an unusable code


@dataclasses.dataclass(frozen=True)
class Partner:
    """A partner organisation of one petition, as stored."""

    id: int
    petition_id: int
    code: str
    name: str
    public_key: str | None = None  # base64 X25519: its consenting signers are sealed for it


def normalise_code(raw: str | None) -> str:
    """The code a snippet's `data-partner` means: "" for none, `INVALID_CODE` when unusable."""
    code = (raw or "").strip().lower()
    if not code:
        return ""
    return code if CODE.fullmatch(code) else INVALID_CODE


def code_from_name(name: str) -> str:
    """A code suggested for a partner's name: "Amnesty International UK" becomes
    "amnesty-international-uk"."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    code = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    return code or "partner"
