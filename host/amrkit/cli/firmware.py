"""`amr build`: the firmware bundle for one board."""

from __future__ import annotations

from pathlib import Path

import click

from amrkit.boards import profile_path
from amrkit.cli.common import EXIT_BUILD, fail, load_board, writable_dir
from amrkit.paths import REPO_DIR


@click.command("build")
@click.option("--board", help="Board profile name (hardware/boards/NAME.toml).")
@click.option(
    "--profile",
    type=click.Path(path_type=Path),
    help="Instead: a board profile file, for boards kept elsewhere.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=REPO_DIR / "build",
    help="Build root [the checkout's build/].",
)
@click.option(
    "--write-source",
    is_flag=True,
    help="Also rewrite firmware/amr/board.py (the committed reference board module).",
)
def build_app(board: str | None, profile: Path | None, out: Path, write_source: bool) -> None:
    """Build the firmware bundle for one board: validate its profile, generate
    the board module amr/board.py and compile the app to .mpy in OUT/BOARD/app."""
    from amrkit import build

    if (board is None) == (profile is None):
        raise click.UsageError("give either --board or --profile")
    spec = load_board(profile or profile_path(str(board)))
    try:
        app = build.build(spec, writable_dir(out, "--out"))
    except build.BuildError as err:
        fail(str(err), EXIT_BUILD)
    if write_source:
        click.echo(f"wrote {build.write_board_module(spec)}")
    count, size = build.bundle_size(app)
    click.echo(f"bundle {app}: {count} files, {size} bytes")
    click.echo(f"release manifest {build.manifest_path(app)}")
