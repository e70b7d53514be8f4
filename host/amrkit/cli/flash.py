"""`amr flash`: MicroPython and the app onto units, verified on the unit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from amrkit.boards import DEFAULT_BOARD, profile_path
from amrkit.cli.common import (
    EXIT_INPUT,
    EXIT_REGISTRY,
    EXIT_UNIT,
    actor_name,
    fail,
    load_board,
    open_registry,
    registry_errors,
    registry_options,
)
from amrkit.images import STOCK_IMAGE_HELP
from amrkit.paths import REPO_DIR

if TYPE_CHECKING:
    from amrkit.boards import Board
    from amrkit.flashing import Admit, FlashError, FlashResult

EXIT_OLDER = EXIT_INPUT  # an older app than the unit's: the input does not fit the unit


@click.command()
@click.option(
    "--port",
    "ports",
    multiple=True,
    help="Serial port or pyserial URL (rfc2217:// for a twin unit); repeat to flash "
    "several units in parallel. Without it: the one USB ESP bridge plugged in.",
)
@click.option(
    "--image",
    type=click.Path(path_type=Path),
    help="MicroPython image (.bin, written at 0x0) [the newest cached for the board].",
)
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board profile name.")
@click.option(
    "--app",
    "app_dir",
    type=click.Path(path_type=Path),
    help="Built app bundle (`amr build`) [build/BOARD/app, built now if missing].",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(path_type=Path),
    help="Image cache directory [$AMR_IMAGES, else the user's data directory].",
)
@click.option("--force", is_flag=True, help="Deploy even if the unit runs a newer app.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per port on stdout.")
@click.option(
    "--no-registry",
    is_flag=True,
    help="Do not record the units (a prototype on the bench); by default each unit is "
    "recorded as flashed, and an issued unit is refused.",
)
@registry_options
def flash(
    ports: tuple[str, ...],
    image: Path | None,
    board: str,
    app_dir: Path | None,
    images_dir: Path | None,
    force: bool,
    as_json: bool,
    no_registry: bool,
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
) -> None:
    """Write the MicroPython image with esptool (stub, compressed, verified), reset
    into MicroPython, deploy the app over the raw REPL and verify each file by its
    SHA-256 computed on the unit.

    An image built for another chip than the board's or the unit's is refused
    before anything is written (exit 5), as is an app older than the one on the
    unit unless --force (exit 5). A port that does not exist, is busy or whose
    unit does not answer exits 6.
    """
    from amrkit import build, flashing, images
    from amrkit.ports import PortError, resolve_port

    spec = load_board(profile_path(board))
    if image is not None:
        try:
            data = image.read_bytes()
        except OSError as err:
            fail(f"cannot read the image {image}: {err.strerror or err}", EXIT_INPUT)
        source = str(image)
    else:
        cache = images.cache_dir(images_dir)
        try:
            cached, data = images.newest_image(cache, spec)
        except images.CacheError as err:
            fail(str(err), EXIT_INPUT)
        source = f"{cached.path(cache)} (cached {cached.source})"
    try:
        flashing.check_image(data, spec.chip, f"board {spec.name}")
    except flashing.FlashError as err:
        fail(f"{source}: {err}", EXIT_INPUT)

    if not ports:
        try:
            ports = (resolve_port(None),)
        except PortError as err:
            fail(str(err), 2 if err.several else EXIT_UNIT)

    app = app_dir or REPO_DIR / "build" / spec.name / "app"
    if app_dir is None and not app.exists():
        try:
            app = build.build(spec)
        except build.BuildError as err:
            fail(str(err), 1)
    if not app.is_dir():
        fail(f"no app bundle at {app}: run `amr build --board {spec.name}`", EXIT_INPUT)

    if no_registry:
        outcomes = _run(ports, data, app, spec.chip, force, quiet=as_json)
    else:
        outcomes = _run_recorded(
            ports, data, app, spec, force, as_json, registry_url, master_key_file, actor
        )
    code = 0
    for port, outcome in outcomes.items():
        if isinstance(outcome, flashing.FlashError):
            code = code or _EXIT_OF_KIND.get(outcome.kind, EXIT_UNIT)
            if as_json:
                click.echo(json.dumps({"port": port, "ok": False, "error": str(outcome)}))
            else:
                click.echo(f"amr: {outcome}", err=True)
        elif as_json:
            click.echo(json.dumps({"ok": True, **outcome.as_dict()}))
        else:
            r = outcome
            click.echo(
                f"{port}: {r.chip} {r.mac}"
                + (f", unit {r.unit_id} recorded as flashed" if r.unit_id else "")
                + f", image {r.image_sha256[:12]}, "
                f"app {r.version} ({r.app_hash[:12]}) verified on the unit, {r.seconds:.1f} s"
            )
    raise SystemExit(code)


_EXIT_OF_KIND = {"input": EXIT_INPUT, "older": EXIT_INPUT, "refused": EXIT_REGISTRY}


def _run_recorded(
    ports: tuple[str, ...],
    data: bytes,
    app: Path,
    spec: Board,
    force: bool,
    quiet: bool,
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
) -> dict[str, FlashResult | FlashError]:
    """Flash with the registry: an issued unit is refused before anything is
    written; each unit flashed is recorded (added with a new unit id if new)."""
    from dataclasses import replace

    from amrkit import flashing
    from amrkit.workflows.registration import may_flash, record_flash

    who = actor_name(actor)
    with open_registry(registry_url, master_key_file) as registry:
        with registry_errors():
            registry.list_units()  # unreadable: stop before any port is touched

        def admit(mac: str) -> str | None:
            with registry_errors():
                return may_flash(registry, mac)
            raise AssertionError("unreachable")

        outcomes = _run(ports, data, app, spec.chip, force, quiet, admit)
        with registry_errors():
            for port, outcome in outcomes.items():
                if isinstance(outcome, flashing.FlashError):
                    continue
                unit = record_flash(
                    registry,
                    who,
                    mac=outcome.mac,
                    board=spec.name,
                    chip=outcome.chip,
                    app_version=outcome.version,
                    app_hash=outcome.app_hash,
                )
                outcomes[port] = replace(outcome, unit_id=unit.unit_id)
    return outcomes


def _run(
    ports: tuple[str, ...],
    data: bytes,
    app: Path,
    chip: str,
    force: bool,
    quiet: bool,
    admit: Admit | None = None,
) -> dict[str, FlashResult | FlashError]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from amrkit import flashing

    columns = (
        TextColumn("{task.fields[port]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, disable=quiet, transient=False) as bars:
        tasks = {p: bars.add_task("waiting", total=1.0, port=p) for p in ports}

        def progress(port: str, stage: str, fraction: float) -> None:
            bars.update(tasks[port], completed=fraction, description=stage)

        return dict(flashing.flash_units(list(ports), data, app, chip, force, progress, admit))


flash.help = (flash.help or "") + "\n\n" + STOCK_IMAGE_HELP
