"""What is installed: models and recipes."""

from __future__ import annotations

from typing import Any, Optional

import typer

from ..errors import invalid
from .base import app, new_console


@app.command()
def models(pattern: str = typer.Argument("*", help="Glob over model names."),
           pretrained: bool = typer.Option(False, "--pretrained", help="List pretrained (timm) backbones.")) -> None:
    """List the registered models."""
    from rich.table import Table

    table = Table()
    for col in ("name", "input", "description"):
        table.add_column(col)
    if pretrained:
        from ..models.transfer import list_pretrained

        for name, desc in list_pretrained(pattern):
            table.add_row(name, "see weights", desc)  # each backbone's own size is in its description
    else:
        from ..models.registry import list_registered  # a static listing: importing the builders means torch

        for m in list_registered(pattern):
            # the fast family trains at the images' own side: 28x28x3 read as what an 8-pixel data set would get
            size = "the images' side (up to 64)" if m.sized_by_images else \
                f"{m.default_img_size}x{m.default_img_size}x{m.default_in_chans}"
            table.add_row(m.name, size, m.description)
    if not table.row_count:  # an empty table would read as "no models installed"
        kind = "pretrained backbone" if pretrained else "registered model"
        hint = f"imgclf models{' --pretrained' if pretrained else ''} lists them all"
        if not pretrained:
            from ..models.transfer import list_pretrained

            if list_pretrained(pattern):  # `train --model resnet18` takes timm's backbones too
                hint = f"Pretrained (timm) backbones match it: imgclf models --pretrained {pattern!r}"
        raise invalid("pattern", pattern, f"a glob matching at least one {kind} name", hint=hint)
    new_console().print(table)


class _RecipesCommand(typer.core.TyperCommand):
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return ["[OPTIONS]", "[[show] NAME]"]  # click would write the word list as [[show] NAME]...


@app.command(cls=_RecipesCommand)
def recipes(words: Optional[list[str]] = typer.Argument(None, metavar="[show] NAME", show_default=False,
                                                        help="A recipe to print; 'show NAME' says the same.")) -> None:
    """List the named recipes, or print one recipe's file as shipped: imgclf recipes NAME.

    The reference systems reproduced, and our own; the file keeps its comments."""
    from ..errors import Described
    from ..recipes import list_recipes, recipe_bytes

    words = list(words or [])
    if words[:1] == ["show"]:  # no recipe is called show: `recipes show NAME` reads as a subcommand would
        words = words[1:]
        if not words:
            raise invalid("NAME", Described("nothing after 'show'"), "a recipe name",
                          hint="imgclf recipes lists them")
    if len(words) > 1:
        raise invalid("recipes arguments", " ".join(words), "one recipe NAME, or show NAME")
    if words:
        typer.echo(recipe_bytes(words[0]), nl=False)  # bytes as shipped: a YAML round trip would drop the comments
        return
    from rich.table import Table

    table = Table()
    table.add_column("recipe")
    table.add_column("description")
    for recipe_name, description in list_recipes():
        table.add_row(recipe_name, description)
    new_console().print(table)
    typer.echo("use: imgclf train DATA --recipe NAME [overrides]")
