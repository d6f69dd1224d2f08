"""Where the widget's files and the example petitions are: inside the installed package (a
wheel carries them as `server/_bundled/`), or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).parent.parent  # server/
_BUNDLED = _PACKAGE / "_bundled"
_ROOT = _BUNDLED if _BUNDLED.is_dir() else _PACKAGE.parent

WIDGET_DIR = _ROOT / "widget"
EXAMPLES_DIR = _ROOT / "examples"
EXAMPLE_PETITION = EXAMPLES_DIR / "petitions" / "save-russian-lgbt-network.toml"
