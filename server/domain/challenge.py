"""The proof-of-work challenge, ALTCHA-style and self-hosted: under attack, a signature must
carry the answer to a small puzzle that costs its browser work, and us one hash to check.

The puzzle: find the whole number `n` from 0 to `maxnumber` for which the hex SHA-256 of
`salt + str(n)` is `challenge`. The browser tries them in order (`widget/challenge.js`, in a
Web Worker); we check one hash. It is bound to its form token: `salt` and `n` are HMACs of the
token's nonce under a key derived from `SECRET_KEYS` (its own purpose label), so nothing is
stored, a solution is worth one token, and a token is worth one signature (the store's unique
nonce). Reusing a solution with another token, or guessing one, is `ChallengeRequired`.

Why `MAX_NUMBER` is 200,000: the widget's solver (one-block SHA-256 in plain JavaScript,
measured faster than WebCrypto's `digest`, whose every call costs a promise) tried 1.7 to 2.2
million hashes a second in Chromium on our shared 2-core test machine, and WebCrypto 80,000 to
150,000. A low-end phone runs JavaScript about 8 to 10 times slower: some 200,000 a second, so
the worst case (every number tried) is about 1 s and the average half that. A bot with native
code does tens of millions a second per core: work alone stops no one who means it. It makes
each signature cost something, the limits and confirmation by email do the rest.

Without JavaScript there is no solver: the no-JS form is accepted instead once its token is
`FORM_WAIT` seconds old (the form comes back, as typed, with "wait a moment" before that). That
costs a bot time, not work; how many tokens it can hold is bounded by the token limits.

`"auto"` (the default of `[signing] challenge`) turns the challenge on for a petition when
refused and failed submissions cross `AUTO_THRESHOLD` within a minute, and off again
`AUTO_HOLD` seconds after the last crossing (`Switch`). Both the count and the switch live on
the shared limit store, so they are one for every worker and host: N workers reach the
threshold together, and a crossing seen by one turns the challenge on in all of them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from server.domain.errors import Refusal
from server.domain.form_tokens import Claims
from server.domain.petitions import CHALLENGES
from server.domain.ratelimit import Limits

ALGORITHM = "SHA-256"
MAX_NUMBER = 200_000  # the puzzle's size: see the module docstring for the figures
FORM_WAIT = 10  # seconds a no-JavaScript form's token must be old while a challenge is on
MODES = CHALLENGES  # `[signing] challenge`

#: Refusals that count towards "auto": what bots earn and signers almost never do (the widget
#: renews stale tokens and waits out fresh ones by itself). Field errors are people's typos,
#: and a closed petition or our storage is no sign of attack: not counted.
AUTO_COUNTED = frozenset({
    "invalid_token", "expired_token", "token_too_fresh", "wrong_petition", "token_used",
    "challenge_required", "rate_limited", "invalid_json", "invalid_encoding", "invalid_body",
    "body_too_large", "unsupported_media_type", "honeypot",
})  # fmt: skip
AUTO_THRESHOLD = 100  # counted refusals of one petition, over every worker and host...
AUTO_WINDOW = 60  # ...within this many seconds (a refusal counts 60 to 65 s), turn it on...
AUTO_HOLD = 600  # ...until this long after the last time they did (600 to 650 s)
HOLD_SLOTS = 12  # slots of the switch's window: it goes off within a slot (50 s) of the hold

_SALT_LABEL = b"petition-widget.challenge.salt"
_NUMBER_LABEL = b"petition-widget.challenge.number"
_SIGNATURE_LABEL = b"petition-widget.challenge.signature"


class ChallengeRequired(Refusal):
    """A submission without the right solution while a challenge is on; `claims` are its
    token's, when genuine (the answer carries a fresh token and challenge)."""

    code = "challenge_required"
    claims: Claims | None = None


@dataclasses.dataclass(frozen=True)
class Puzzle:
    """One token's challenge, as the API shows it (`fields`)."""

    salt: str
    number: int  # the answer: never sent
    challenge: str
    signature: str
    maxnumber: int
    expires: int

    def fields(self) -> dict[str, Any]:
        return {
            "algorithm": ALGORITHM,
            "challenge": self.challenge,
            "salt": self.salt,
            "maxnumber": self.maxnumber,
            "signature": self.signature,
            "expires": self.expires,
        }


class Challenges:
    """Puzzles made from tokens' nonces, and their solutions checked; pure and stateless."""

    def __init__(self, secret_keys: Sequence[str], *, maxnumber: int = MAX_NUMBER) -> None:
        # The first key makes puzzles, every key checks them (as with form tokens).
        self._keys = [hashlib.sha256(b"challenge:" + k.encode()).digest() for k in secret_keys]
        self.maxnumber = maxnumber

    def puzzle(self, claims: Claims, expires: int) -> Puzzle:
        return self._puzzle(self._keys[0], claims.nonce, expires)

    def _puzzle(self, key: bytes, nonce: str, expires: int) -> Puzzle:
        salt = _mac(key, _SALT_LABEL, nonce)[:32]
        number = int(_mac(key, _NUMBER_LABEL, nonce), 16) % (self.maxnumber + 1)
        challenge = hashlib.sha256(f"{salt}{number}".encode()).hexdigest()
        signature = _mac(key, _SIGNATURE_LABEL, challenge)
        return Puzzle(salt, number, challenge, signature, self.maxnumber, expires)

    def solved(self, claims: Claims, solution: object) -> bool:
        """Whether `solution` answers the puzzle of this token. A solution is the number, as a
        JSON number or decimal text, or ALTCHA's payload (base64 of JSON with `number`)."""
        number = _number_of(solution)
        if number is None:
            return False
        return any(
            hmac.compare_digest(str(self._puzzle(key, claims.nonce, 0).number), str(number))
            for key in self._keys
        )


def _mac(key: bytes, label: bytes, text: str) -> str:
    return hmac.new(key, label + b"\0" + text.encode(), hashlib.sha256).hexdigest()


def _number_of(solution: object) -> int | None:
    if isinstance(solution, bool):
        return None
    if isinstance(solution, int):
        return solution if 0 <= solution <= 10**12 else None
    if not isinstance(solution, str) or len(solution) > 2_000:
        return None
    text = solution.strip()
    if text.isascii() and text.isdigit() and len(text) <= 12:
        return int(text)
    try:  # ALTCHA's widget posts base64 of {"algorithm", "challenge", "number", "salt", ...}
        payload = json.loads(base64.b64decode(text, validate=True))
    except ValueError:
        return None
    found = payload.get("number") if isinstance(payload, dict) else None
    return _number_of(found) if isinstance(found, int) else None


class Switch:
    """ "auto", per petition, for every worker and host: on once `threshold` counted refusals
    fall within a minute, off `hold` to `hold` + one slot after the last time they did.

    Two limiters of the shared limit store (`ratelimit.Limits`) hold it, keyed by petition:
    `refusals` counts the refusals (a limit of `threshold` a minute: past it, the threshold is
    crossed), and `on` one mark per crossing, whose window is the hold. A worker counts and
    checks in memory; its flushes add its counts to every other's and announce a petition
    nearing either (`SharedLimiter.take_announced`), so a crossing that one worker sees turns
    the challenge on in all of them within a flush or two. `trip` is the hook for other
    signals: it turns the challenge on as a crossing would."""

    def __init__(
        self,
        limits: Limits,
        *,
        threshold: int = AUTO_THRESHOLD,
        hold: int = AUTO_HOLD,
        name: str = "challenge",
    ) -> None:
        self.threshold, self.hold = threshold, hold
        slot = max(1, hold // HOLD_SLOTS)
        self._refusals = limits.limiter(f"{name}-refusals", threshold)
        self._on = limits.limiter(f"{name}-on", 1, slot=slot, slots=HOLD_SLOTS + 1)
        self._clock = limits.clock
        self._marked: dict[Hashable, float] = {}  # petition -> when this worker last marked

    def note(self, petition: Hashable, code: str) -> None:
        """Count a refusal of `petition` whose code is `code` (only `AUTO_COUNTED` ones)."""
        if code not in AUTO_COUNTED:
            return
        key = _key(petition)
        self._refusals.count(key)
        if self._refusals.wait(key):  # `threshold` within the minute, here and elsewhere
            self.trip(petition)

    def trip(self, petition: Hashable) -> None:
        """Turn the challenge on for `petition` now, for `hold` seconds (one mark a slot at
        most: marks within a slot end together)."""
        now = self._clock()
        if now - self._marked.get(petition, float("-inf")) < self._on.slot:
            return
        self._marked[petition] = now
        if len(self._marked) > 10_000:  # petitions, not clients: a bound that never bites
            self._marked.clear()
        self._on.count(_key(petition))

    def active(self, petition: Hashable) -> bool:
        """Whether a crossing, here or on another worker, falls within the hold: a dictionary
        lookup in this process."""
        return self._on.wait(_key(petition)) > 0


def _key(petition: Hashable) -> str:
    return str(petition)


def required(mode: str, switch: Switch, petition: Hashable) -> bool:
    """Whether a petition in `mode` ("off", "auto", "on") asks for a challenge now."""
    return mode == "on" or (mode == "auto" and switch.active(petition))


def answer(fields: Mapping[str, Any]) -> object:
    """The submitted solution (`challenge_solution`)."""
    return fields.get("challenge_solution")
