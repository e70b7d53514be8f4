"""`amr check`: the acceptance check before a unit is issued."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from amrkit.boards import DEFAULT_BOARD, profile_path
from amrkit.cli.common import (
    EXIT_INPUT,
    EXIT_RADIO,
    EXIT_UNFIT,
    EXIT_UNIT,
    actor_name,
    fail,
    load_board,
    open_registry,
    registry_errors,
    registry_options,
)
from amrkit.cli.provision import resolve_wired_port
from amrkit.paths import REPO_DIR


@click.command()
@registry_options
@click.option("--port", help="The unit's serial port or pyserial URL [the one USB board attached].")
@click.option(
    "--transport",
    required=True,
    help="The check's own receiver: bumble on this HCI transport (usb:0, or tcp-client:... "
    "as `amr sim` prints); it hears, verifies and acknowledges the test press.",
)
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Board profile name.")
@click.option(
    "--release",
    type=click.Path(path_type=Path),
    help="Release manifest the app must match [build/BOARD/release.json].",
)
@click.option(
    "--press-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1.0, max=300.0),
    help="Seconds the press test waits for the test press.",
)
@click.option(
    "--certificate",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the certificate (HTML) here [UNIT-check.html in the current folder].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    port: str | None,
    transport: str,
    board: str,
    release: Path | None,
    press_timeout: float,
    certificate: Path | None,
    as_json: bool,
) -> None:
    """Check a provisioned unit before it is issued: app hash against the release,
    keys by challenge, records and counter, battery under load and the cell's
    internal resistance, faults, and a guided press test (test mode: a real
    press sends a TEST_PRESS frame, never an alert). Prints a pass/fail table,
    stores the signed report in the registry (a pass moves the unit to checked)
    and writes an HTML certificate. Exit 7 if any check fails."""
    from amrkit.unit import RadioUnavailable, UnitError
    from amrkit.workflows.certificate import write_certificate
    from amrkit.workflows.check import acceptance_check

    spec = load_board(profile_path(board))
    manifest_file = release or REPO_DIR / "build" / spec.name / "release.json"
    try:
        manifest = json.loads(manifest_file.read_text())
        str(manifest["app_hash"]), str(manifest["version"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        fail(
            f"cannot read the release manifest {manifest_file} ({err}): "
            f"run amr build --board {spec.name}, or give --release",
            EXIT_INPUT,
        )
    who = actor_name(actor)
    where = resolve_wired_port(port)

    def prompt(text: str) -> None:
        click.echo(f">>> {text}", err=True)

    with open_registry(registry_url, master_key_file) as registry, registry_errors():
        try:
            done = asyncio.run(
                acceptance_check(
                    where,
                    registry,
                    who,
                    board=spec,
                    release=manifest,
                    transport=transport,
                    press_limit_s=press_timeout,
                    prompt=prompt,
                )
            )
        except RadioUnavailable as err:
            fail(str(err), EXIT_RADIO)
        except UnitError as err:
            fail(f"{err}; the check did not run to its end, nothing was recorded", EXIT_UNIT)
    report = done.report
    path = write_certificate(certificate or Path(f"{report['unit_id']}-check.html"), report)
    if as_json:
        click.echo(json.dumps({**report, "certificate": str(path)}))
    else:
        width = max(len(c["name"]) for c in report["checks"])
        for c in report["checks"]:
            mark = "pass" if c["passed"] else "FAIL"
            click.echo(f"{c['name']:<{width}}  {mark}  {c['measured']}  (expected {c['expected']})")
        verdict = "PASSED" if done.passed else "FAILED"
        click.echo(
            f"\nunit {report['unit_id']}: {verdict}; report {done.report_id} signed in the "
            f"registry; certificate {path}"
        )
    if not done.passed:
        raise SystemExit(EXIT_UNFIT)
