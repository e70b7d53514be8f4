"""`amr images`: the local cache of MicroPython images `amr flash` takes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from amrkit.boards import DEFAULT_BOARD, profile_path
from amrkit.cli.common import EXIT_INPUT, fail, load_board
from amrkit.images import STOCK_IMAGE_HELP

IMAGES_OPTION = click.option(
    "--images",
    "images_dir",
    type=click.Path(path_type=Path),
    help="Cache directory [$AMR_IMAGES, else the user's data directory].",
)


@click.group(epilog=STOCK_IMAGE_HELP)
def images() -> None:
    """The local cache of MicroPython images, checked by SHA-256 before each flash."""


@images.command("add")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board profile name.")
@IMAGES_OPTION
def add(file: Path, board: str, images_dir: Path | None) -> None:
    """Add an image FILE for a board; its header's chip must be the board's."""
    from amrkit.images import CacheError, add_image, cache_dir

    spec = load_board(profile_path(board))
    cache = cache_dir(images_dir)
    try:
        entry = add_image(cache, file, spec)
    except CacheError as err:
        fail(str(err), EXIT_INPUT)
    click.echo(f"added {file} for {spec.name} ({entry.chip}): {entry.sha256} in {cache}")


@images.command("list")
@IMAGES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def list_(images_dir: Path | None, as_json: bool) -> None:
    """List the cached images, newest first."""
    from dataclasses import asdict

    from amrkit.images import CacheError, cache_dir, list_images

    cache = cache_dir(images_dir)
    try:
        entries = sorted(list_images(cache), key=lambda i: i.added, reverse=True)
    except CacheError as err:
        fail(str(err), EXIT_INPUT)
    if as_json:
        click.echo(json.dumps({"cache": str(cache), "images": [asdict(e) for e in entries]}))
        return
    if not entries:
        click.echo(f"no images in {cache}; add one with `amr images add FILE --board BOARD`")
        return
    for e in entries:
        added = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.added))
        click.echo(f"{added}  {e.board:<16} {e.chip:<9} {e.size:>8}  {e.sha256[:16]}  {e.source}")
