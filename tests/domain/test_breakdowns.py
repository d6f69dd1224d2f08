"""The one shape of a breakdown and the rule that hides small cells from all but the owner."""

from __future__ import annotations

from server.domain import breakdowns


def test_small_cells_are_hidden_from_everyone_but_the_owner() -> None:
    counts = {"RU": 1234, "KZ": 3, "DE": 10, "AM": 9, None: 4}
    assert breakdowns.cells(counts, key="country", exact=False) == [
        {"country": "RU", "signatures": 1234},
        {"country": "DE", "signatures": 10},  # ten is shown: only cells under ten are hidden
        {"country": "AM", "signatures": None, "fewer_than": 10},
        {"country": "KZ", "signatures": None, "fewer_than": 10},
        {"country": None, "signatures": None, "fewer_than": 10},
    ]


def test_the_owner_sees_every_cell_exactly() -> None:
    counts = {"RU": 1234, "KZ": 3, None: 4}
    assert breakdowns.cells(counts, key="country", exact=True) == [
        {"country": "RU", "signatures": 1234},
        {"country": "KZ", "signatures": 3},
        {"country": None, "signatures": 4},
    ]


def test_hidden_cells_are_in_key_order_so_their_order_tells_nothing() -> None:
    one = breakdowns.cells({"UA": 9, "AM": 1, "BY": 5}, key="country", exact=False)
    assert [c["country"] for c in one] == ["AM", "BY", "UA"]


def test_exact_cells_largest_first_then_by_key() -> None:
    cells = breakdowns.cells({"ru": 20, "en": 20, "de": 30}, key="lang", exact=False)
    assert cells == [
        {"lang": "de", "signatures": 30},
        {"lang": "en", "signatures": 20},
        {"lang": "ru", "signatures": 20},
    ]


def test_empty_cells_and_no_signatures_give_no_cells() -> None:
    assert breakdowns.cells({}, key="country", exact=False) == []
    assert breakdowns.cells({"RU": 0}, key="country", exact=True) == []
