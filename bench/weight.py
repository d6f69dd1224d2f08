"""The widget's weight: what a partner's page loads (the loader) and what the iframe loads
before its first render (the document and every stylesheet, script, image or font it names),
in bytes raw and as served to a browser that accepts gzip, with the number of requests.
"""

from __future__ import annotations

import dataclasses
import gzip
import re

from bench.servers import get

ACCEPT = {"Accept-Encoding": "gzip, deflate, br", "Accept": "text/html,*/*"}
# Resources a document or stylesheet makes the browser fetch before it can render.
_REFERENCES = [
    re.compile(r"<link\b[^>]*\brel=\"?(?:stylesheet|preload|modulepreload|icon)\b[^>]*>", re.I),
    re.compile(r"<script\b[^>]*\bsrc=[^>]*>", re.I),
    re.compile(r"<img\b[^>]*\bsrc=[^>]*>", re.I),
]
_URL_ATTRIBUTE = re.compile(r"\b(?:href|src)=\"?([^\"\s>]+)", re.I)
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)")


@dataclasses.dataclass
class Item:
    what: str
    path: str
    raw: int  # bytes of the file itself
    served: int  # bytes on the wire with Accept-Encoding: gzip (raw when sent uncompressed)
    encoding: str  # "gzip" or "identity"
    first_render: bool  # part of the iframe's first render (the loader is not)


def _fetch(port: int, path: str, what: str, first_render: bool) -> tuple[Item, bytes]:
    status, headers, body = get(port, path, ACCEPT)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")
    encoding = headers.get("content-encoding", "identity")
    raw = gzip.decompress(body) if encoding == "gzip" else body
    return Item(what, path, len(raw), len(body), encoding, first_render), raw


def _references(text: str, pattern_list: list[re.Pattern[str]]) -> list[str]:
    found = []
    for pattern in pattern_list:
        for tag in pattern.findall(text):
            url = _URL_ATTRIBUTE.search(tag)
            if url:
                found.append(url[1])
    return found


def _same_origin(url: str, port: int) -> str | None:
    """The path of a URL this server would be asked for, None for data: URIs."""
    if url.startswith("data:"):
        return None
    for prefix in (f"http://127.0.0.1:{port}", f"//127.0.0.1:{port}"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    if url.startswith(("http:", "https:", "//")):
        raise RuntimeError(f"the widget loads a third-party resource: {url}")
    return url


def measure(port: int, slug: str) -> list[Item]:
    loader, _ = _fetch(port, "/embed.js", "loader (embed.js, on the partner's page)", False)
    document, html = _fetch(port, f"/widget/{slug}", "frame document", True)
    items = [loader, document]
    pending = _references(html.decode(), _REFERENCES)
    seen = set()
    while pending:
        path = _same_origin(pending.pop(0), port)
        if path is None or path in seen:
            continue
        seen.add(path)
        item, body = _fetch(port, path, path.rsplit("/", 1)[-1], True)
        items.append(item)
        if path.endswith(".css"):
            pending += [u for u in _CSS_URL.findall(body.decode()) if not u.startswith("#")]
    return items


def table(items: list[Item]) -> str:
    lines = [
        "## Widget weight (bytes; served = on the wire to a browser that accepts gzip)",
        "",
        "| File | Raw | Served | Encoding |",
        "|---|--:|--:|---|",
    ]
    for item in items:
        lines.append(f"| {item.what} | {item.raw:,} | {item.served:,} | {item.encoding} |")
    frame = [i for i in items if i.first_render]
    lines.append(
        f"| **iframe to first render: {len(frame)} requests** | "
        f"{sum(i.raw for i in frame):,} | {sum(i.served for i in frame):,} | |"
    )
    return "\n".join(lines)
