"""The example petition as tests use it.

The file asks for email confirmation (`[signing] confirmation = "email"`), as a petition whose
signers may be at risk should. Most tests are about what happens once a signature counts, so
they take it with `confirmation = "none"`; the tests of confirmation ask for `"email"`.

The file leaves `[signing] challenge` at its default, `"auto"`; tests take it `"off"`, so that a
test that sends refusals on purpose (a fuzzer sends thousands) does not turn a proof of work on
for the tests after it. The challenge's own tests ask for `"auto"` and `"on"`.
"""

from __future__ import annotations

import dataclasses

from server.domain.petitions import Petition, load_file
from server.web import bundle


def example(confirmation: str = "none", challenge: str = "off") -> Petition:
    return dataclasses.replace(
        load_file(bundle.EXAMPLE_PETITION), confirmation=confirmation, challenge=challenge
    )
