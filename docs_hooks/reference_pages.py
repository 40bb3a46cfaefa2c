"""mkdocs hook: fills the generated reference pages at build time.

A page holds a marker comment where the generated Markdown goes, so its introduction stays hand-written
and its tables cannot drift from the code: `<!-- generated: settings -->` (the pydantic Settings of
chatlens/core/settings.py) and `<!-- generated: cli -->` (the typer app of chatlens/cli/app.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# Document the checkout being built, not whatever `chatlens` the environment has installed.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mkdocs.exceptions import PluginError  # noqa: E402

from docs_hooks import cli_tree, settings_table  # noqa: E402

GENERATORS = {
    "<!-- generated: settings -->": settings_table.markdown,
    "<!-- generated: cli -->": cli_tree.markdown,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for marker, generate in GENERATORS.items():
        if marker in markdown:
            try:
                generated = generate()
            except settings_table.MissingDescription as exc:
                raise PluginError(str(exc)) from None  # one line that names the field, not a traceback
            markdown = markdown.replace(marker, generated)
    return markdown
