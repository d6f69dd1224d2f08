"""Static files of the widget, fingerprinted and compressed once at start-up, and responses
made ahead of time for the hot reads.

The frame's stylesheet and script are served under names that carry a digest of their content
(`widget.3f9a1c2b.css`), so browsers may keep them a year without asking again; a new release
gets new names. The loader, `embed.js`, keeps its name (it is in partners' snippets) and is
cached briefly instead. Bodies are gzipped ahead of time: nothing is compressed per request.

Whole-line comments are left out of what is served (`served_text`): the files in `widget/` say
why at length, for the designers and developers who read them, and those words cost every
visitor about a quarter of the frame's first render (1.4 KB of 6 KB gzipped for the script and
stylesheet), room that the longer languages need. Only lines that are nothing but a comment go,
and in scripts the indentation and the comments that end a line, so no code changes meaning.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

IMMUTABLE = "public, max-age=31536000, immutable"

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# A block comment that starts its line and ends one, or a line of `//` comment (scripts only).
_BLOCK_COMMENT = re.compile(r"^[ \t]*/\*(?:(?!\*/).)*\*/[ \t]*\n", re.MULTILINE | re.DOTALL)
_LINE_COMMENT = re.compile(r"^[ \t]*//.*\n", re.MULTILINE)


# In scripts, also the indentation (no script of ours has a string or template that spans
# lines) and a `//` comment after a statement's last character, when the comment holds no
# quote (so the `//` cannot be inside a string that the line closes later).
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
_TRAILING_COMMENT = re.compile(r"([;{},)])[ \t]+//[^\"'`\n]*$", re.MULTILINE)


def served_text(text: str, suffix: str) -> str:
    """A stylesheet or script without the lines that are only comments; a script also without
    its indentation and the comments that end its lines (about 300 bytes of widget.js gzipped,
    room the first render of the longer languages needs)."""
    text = _BLOCK_COMMENT.sub("", text)
    if suffix != ".js":
        return text
    text = _LINE_COMMENT.sub("", text)
    return _TRAILING_COMMENT.sub(r"\1", _INDENT.sub("", text))


@dataclasses.dataclass(frozen=True)
class Asset:
    name: str  # the public name, fingerprinted unless the file's name is fixed
    media_type: str
    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def load(cls, path: Path, *, fingerprint: bool) -> Asset:
        body = served_text(path.read_text(encoding="utf-8"), path.suffix).encode()
        digest = hashlib.sha256(body).hexdigest()
        name = f"{path.stem}.{digest[:10]}{path.suffix}" if fingerprint else path.name
        return cls(
            name=name,
            media_type=_TYPES[path.suffix],
            body=body,
            gzipped=gzip.compress(body, compresslevel=9, mtime=0),
            etag=f'"{digest[:20]}"',
        )

    def response(self, request: Request, cache_control: str) -> Response:
        headers = {
            "Cache-Control": cache_control,
            "ETag": self.etag,
            "Vary": "Accept-Encoding",
            # Loaded by partners' pages on other origins: say so explicitly.
            "Cross-Origin-Resource-Policy": "cross-origin",
        }
        if self.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return compressed(request, self.body, self.media_type, headers, self.gzipped)


# A response made ahead of time: its status, its encoded headers and its body.
Parts = tuple[int, list[tuple[bytes, bytes]], bytes]


class Prebuilt(Response):
    """A response whose status, headers and body were all made ahead of time: the hot reads
    answer with one of these without building headers per request."""

    def __init__(self, parts: Parts) -> None:
        self.status_code, self.raw_headers, self.body = parts
        self.background = None


def prebuilt(
    status: int, headers: dict[str, str], body: bytes = b"", media_type: str | None = None
) -> Parts:
    response = Response(body, status, headers, media_type=media_type)
    return status, response.raw_headers, body


def accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def compressed(
    request: Request,
    body: bytes,
    media_type: str,
    headers: dict[str, str],
    gzipped: bytes | None = None,
    status: int = 200,
) -> Response:
    """`body`, gzipped when the client accepts it and it is worth it."""
    headers = {**headers, "Vary": "Accept-Encoding"}
    if accepts_gzip(request) and len(body) > 512:
        headers["Content-Encoding"] = "gzip"
        body = gzipped if gzipped is not None else gzip.compress(body, compresslevel=6, mtime=0)
    return Response(body, status, headers, media_type=media_type)
