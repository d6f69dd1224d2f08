"""The example petition as tests use it.

The file asks for email confirmation (`[signing] confirmation = "email"`), as a petition whose
signers may be at risk should. Most tests are about what happens once a signature counts, so
they take it with `confirmation = "none"`; the tests of confirmation ask for `"email"`.
"""

from __future__ import annotations

import dataclasses

from server.domain.petitions import Petition, load_file
from server.web import bundle


def example(confirmation: str = "none") -> Petition:
    return dataclasses.replace(load_file(bundle.EXAMPLE_PETITION), confirmation=confirmation)
