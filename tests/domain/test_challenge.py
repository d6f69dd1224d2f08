"""The proof-of-work challenge, pure: `[signing] challenge` in a petition file; a puzzle is
bound to its token's nonce, its answer is found by trying numbers as the widget does, only that
answer passes (as a number, text or ALTCHA's payload), and `"auto"` turns on when refusals
cross the threshold within a minute and off again after the hold, on an injected clock."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import pytest

from server.domain import challenge
from server.domain.challenge import Challenges, Switch
from server.domain.form_tokens import Claims
from server.domain.petitions import PetitionFileError, parse
from server.domain.ratelimit import Limits
from server.web import bundle

ISSUED = 1_764_000_000
CLAIMS = Claims(
    "save-russian-lgbt-network", "ngo-a", "en", "nonce-1", ISSUED, ISSUED + 7200, ISSUED
)
SMALL = 2_000  # a small puzzle: the brute force below stays quick


def brute_force(fields: dict[str, object]) -> int:
    """What widget/challenge.js does: try every number up to maxnumber."""
    salt, wanted = str(fields["salt"]), fields["challenge"]
    for n in range(int(str(fields["maxnumber"])) + 1):
        if hashlib.sha256(f"{salt}{n}".encode()).hexdigest() == wanted:
            return n
    raise AssertionError("no solution")


def test_a_puzzle_has_the_documented_fields_and_its_answer_passes() -> None:
    works = Challenges(["key"], maxnumber=SMALL)
    fields = works.puzzle(CLAIMS, expires=1_764_007_200).fields()
    assert set(fields) == {"algorithm", "challenge", "salt", "maxnumber", "signature", "expires"}
    assert fields["algorithm"] == "SHA-256" and fields["maxnumber"] == SMALL
    assert fields["expires"] == 1_764_007_200
    assert len(str(fields["salt"])) == 32  # salt and number fit one SHA-256 block
    n = brute_force(fields)
    assert works.solved(CLAIMS, n) and works.solved(CLAIMS, str(n))
    altcha = base64.b64encode(json.dumps({"number": n, "salt": fields["salt"]}).encode()).decode()
    assert works.solved(CLAIMS, altcha)  # what ALTCHA's own widget posts


@pytest.mark.parametrize("wrong", [None, "", "x", -1, True, 1.5, "1e3", "²", [], {}, "9" * 40])
def test_anything_but_the_answer_fails(wrong: object) -> None:
    assert not Challenges(["key"], maxnumber=SMALL).solved(CLAIMS, wrong)


def test_a_solution_is_worth_only_its_own_token() -> None:
    works = Challenges(["key"])
    mine = works.puzzle(CLAIMS, 0)
    other = dataclasses.replace(CLAIMS, nonce="nonce-2")
    assert works.puzzle(other, 0).salt != mine.salt
    assert works.puzzle(other, 0).number != mine.number  # (fixed keys: this is deterministic)
    assert works.solved(CLAIMS, mine.number) and not works.solved(other, mine.number)
    assert not Challenges(["another key"]).solved(CLAIMS, mine.number)


def test_a_puzzle_made_before_a_key_rotation_still_passes() -> None:
    n = brute_force(Challenges(["old"], maxnumber=SMALL).puzzle(CLAIMS, 0).fields())
    assert Challenges(["new", "old"], maxnumber=SMALL).solved(CLAIMS, n)


def test_the_default_size_is_the_documented_one() -> None:
    assert challenge.MAX_NUMBER == 200_000
    fields = Challenges(["key"]).puzzle(CLAIMS, 0).fields()
    assert fields["maxnumber"] == 200_000


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def switch_on(clock: Clock, threshold: int = challenge.AUTO_THRESHOLD, hold: int = 600) -> Switch:
    return Switch(Limits(clock), threshold=threshold, hold=hold)


def test_auto_turns_on_at_the_threshold_within_the_window_and_off_after_the_hold() -> None:
    clock = Clock()
    switch = switch_on(clock, threshold=10, hold=600)
    for _ in range(9):
        switch.note(1, "invalid_token")
        clock.t += 6  # 9 refusals over 54 s: not yet
    assert not switch.active(1)
    switch.note(1, "invalid_token")  # the tenth, 54 s after the first
    crossed = clock.t
    assert switch.active(1) and not switch.active(2)  # per petition
    assert challenge.required("auto", switch, 1) and challenge.required("on", switch, 2)
    assert not challenge.required("off", switch, 1)
    clock.t = crossed + 599
    assert switch.active(1)
    clock.t = crossed + 650  # the hold, and at most one slot of the switch's window more
    assert not switch.active(1) and not challenge.required("auto", switch, 1)


def test_auto_ignores_slow_refusals_and_what_people_cause() -> None:
    clock = Clock()
    switch = switch_on(clock, threshold=10, hold=600)
    for _ in range(50):
        switch.note(1, "token_used")
        clock.t += 8  # 10 of them take 72 s: slower than the threshold
    for code in ("invalid_fields", "petition_closed", "storage_unavailable"):
        for _ in range(20):
            switch.note(1, code)
    assert not switch.active(1)


def test_an_attack_that_goes_on_keeps_it_on() -> None:
    clock = Clock()
    switch = switch_on(clock, threshold=10, hold=600)
    for _ in range(10):
        switch.note(1, "honeypot")
    started = clock.t
    while clock.t < started + 1_200:  # 20 minutes of a refusal a second
        clock.t += 1
        switch.note(1, "honeypot")
        assert switch.active(1)
    clock.t += 650
    assert not switch.active(1)


def test_trip_is_the_hook_for_other_signals() -> None:
    clock = Clock()
    switch = switch_on(clock, hold=600)
    switch.trip(7)
    assert switch.active(7)
    clock.t += 650
    assert not switch.active(7)


@pytest.mark.parametrize("mode", ["sideways", 1, True])
def test_a_petition_file_names_one_of_the_modes(mode: object) -> None:
    text = bundle.EXAMPLE_PETITION.read_text(encoding="utf-8")
    value = f'"{mode}"' if isinstance(mode, str) else str(mode).lower()
    broken = text.replace('challenge = "auto"', f"challenge = {value}")
    with pytest.raises(PetitionFileError, match=r"signing\.challenge must be one of off, auto, on"):
        parse(broken)


def test_a_petition_file_without_the_key_is_auto() -> None:
    text = bundle.EXAMPLE_PETITION.read_text(encoding="utf-8")
    without = "\n".join(line for line in text.splitlines() if not line.startswith("challenge ="))
    assert "challenge =" not in without
    assert parse(without).challenge == "auto"
    assert parse(without.replace("[signing]", '[signing]\nchallenge = "off"')).challenge == "off"
