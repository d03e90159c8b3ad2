"""The images a command on a run takes (predict, explain): files and folders as given, each missing one refused,
the folders walked once; and the exit when none of them could be read."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..errors import bad_path


def refuse_missing(images: list[str]) -> None:
    """Taken as strings, not Paths: a Path changes the spelling ("./a.png" became "a.png"), and the rows written
    could not be matched back to the paths given, as the Python API's can."""
    missing = [p for p in images if not os.path.exists(os.path.expanduser(p))]
    if missing:
        wildcard = any(c in m for m in missing for c in "*?[")
        links = [m for m in missing if os.path.islink(m)]
        raise bad_path("images", ", ".join(missing), "existing files or folders",
                       "broken symlink (its target is gone)" if links == missing else "not found",
                       hint="A quoted pattern is not expanded: leave the quotes out for the shell to expand it, "
                            "or give the folder" if wildcard else None)


def image_paths(images: list[str], utf8_names: bool = True) -> list[str]:
    """The image files given and found in the folders given, the folders walked once (predict and explain then
    take the files): none at all is refused in one line, and an empty folder beside others is warned of, as the
    API warns of it."""
    from ..inputs import expand_inputs, warn_of_left_out

    empty: list[str] = []
    others: list[str] = []
    unread: list[str] = []
    paths = expand_inputs(images, empty, others, unread, utf8_names=utf8_names)  # predict: False
    if not paths:
        raise no_image_found(images, unread)
    warn_of_left_out(empty, others, unread)
    return paths


def no_image_found(images: list[str], unread: list[str] = ()) -> Exception:
    """None found: where a folder could not be listed (a permission), that is the reason, not "no image"."""
    from ..data.folder import IMAGE_EXTENSIONS

    why = "no image found" + (f"; could not be read: {'; '.join(unread[:3])}" if unread else "")
    return bad_path("images", ", ".join(map(str, images)), "image files, or folders holding images with an "
                    f"extension in {', '.join(IMAGE_EXTENSIONS)}", why)


def exit_none_readable(count: int, output: Path | None = None) -> None:
    """Each file's row says why it could not be read (in `output` where one was written); the status tells a
    script that nothing came of it."""
    from ..errors import Described, invalid_message

    where = f"is in {output}" if output else "is printed with it"
    message = invalid_message("images", Described(f"{count} file(s), none readable"),
                              "images of which at least one can be read", hint=f"Each file's reason {where}")
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)
