from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.web.stencil import Stencil

HOLES = {"token": "HOLEtoken", "frame": "HOLEframe"}


def page(size: int = 5_000) -> str:
    middle = "".join(f"<option value='{i}'>Country {i}</option>" for i in range(size // 40))
    return f"<html><p>HOLEframe</p>{middle}<input value='HOLEtoken'><script>HOLEframe</script>"


def test_plain_fills_every_hole() -> None:
    s = Stencil(page(), HOLES)
    text = s.plain({"token": "T0K", "frame": "f1"}).decode()
    assert text == page().replace("HOLEtoken", "T0K").replace("HOLEframe", "f1")


def test_gzip_is_a_valid_stream_of_the_same_text() -> None:
    s = Stencil(page(), HOLES)
    values = {"token": "a" * 150, "frame": "abc123"}
    body = s.gzip(values)
    assert gzip.decompress(body) == s.plain(values)
    assert zlib.decompress(body, 16 + zlib.MAX_WBITS) == s.plain(values)  # strict trailer check
    assert len(body) < len(s.plain(values)) / 3


def test_empty_values_and_text_without_holes() -> None:
    s = Stencil(page(), HOLES)
    empty = {"token": "", "frame": ""}
    assert gzip.decompress(s.gzip(empty)) == s.plain(empty)
    assert gzip.decompress(Stencil("no holes here", HOLES).gzip({})) == b"no holes here"


def test_a_hole_holds_at_most_one_stored_block() -> None:
    with pytest.raises(ValueError, match="65,535"):
        Stencil(page(), HOLES).gzip({"token": "x" * 70_000, "frame": ""})


@given(st.text(max_size=2_000), st.text(max_size=300), st.text(max_size=300))
def test_any_text_round_trips(text: str, token: str, frame: str) -> None:
    template = text.replace("HOLE", "") + "HOLEtoken" + text[::-1].replace("HOLE", "") + "HOLEframe"
    s = Stencil(template, HOLES)
    values = {"token": token, "frame": frame}
    assert gzip.decompress(s.gzip(values)) == s.plain(values)
