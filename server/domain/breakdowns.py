"""Totals by country and by language, and the rule that hides small cells. Pure.

One shape wherever a breakdown is shown (the public petition JSON with `[public] by_country`,
the keyed API, the dashboard, the delivery pack): a list of cells, `{"country": "RU",
"signatures": 1234}`, and, for a cell under `MINIMUM` that the reader may not see exactly,
`{"country": "KZ", "signatures": null, "fewer_than": 10}`. Only the owner sees every cell
exactly; the public and a partner (its own signers' breakdown) see small cells as
`fewer_than`. A handful of signers from one country could be a few people a hostile reader
can find; ten is the line the dashboard's domain lookup draws too.

Order: exact cells by count, largest first (ties by key); then the hidden cells by key, since
ordering them by their true counts would tell what the rule hides; the cell of signers who gave
no country (`None`) last. What the rule cannot hide, the total minus the exact cells, is said
in docs/privacy.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Below this many signatures, a cell is shown as `fewer_than` to anyone but the owner.
MINIMUM = 10


def cells(
    counts: Mapping[str | None, int], *, key: str, exact: bool, minimum: int = MINIMUM
) -> list[dict[str, Any]]:
    """`counts` (a country code or language → signatures; None: not given) as the list of
    cells of the one shape, under `key` ("country" or "lang"). `exact`: the owner's view, every
    cell as it is. Empty cells are left out."""
    shown = [(k, n) for k, n in counts.items() if n > 0]
    open_cells = sorted(
        ((k, n) for k, n in shown if exact or n >= minimum),
        key=lambda item: (item[0] is None, -item[1], item[0] or ""),
    )
    hidden = sorted(
        (k for k, n in shown if not exact and n < minimum),
        key=lambda k: (k is None, k or ""),
    )
    result: list[dict[str, Any]] = [{key: k, "signatures": n} for k, n in open_cells]
    result += [{key: k, "signatures": None, "fewer_than": minimum} for k in hidden]
    # The cell of signers who gave none, exact or not, goes last.
    return sorted(result, key=lambda cell: cell[key] is None)
