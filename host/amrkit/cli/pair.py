"""`amr pair`: open a unit's service mode (over the wire in the store's jig,
or by the wearer's gesture), pair with it over BLE (LE Secure Connections,
the passkey derived from its keys), say so, and list or clear its bonds.
Keys come from the registry (recorded as a "pair" audit action) or from a
key bundle."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from amrkit.cli.common import (
    EXIT_KEYS,
    EXIT_RADIO,
    EXIT_UNIT,
    actor_name,
    bundle_units,
    echo_result,
    fail,
    open_registry,
    registry_errors,
    registry_options,
    unit_id_option,
)
from amrkit.cli.provision import on_wired_unit, resolve_wired_port

if TYPE_CHECKING:
    from amrkit.protocol import KnownUnit
    from amrkit.registry import Registry

GESTURE = "three double taps, a few seconds apart"


def registry_units(registry: Registry, unit_id: str | None) -> list[KnownUnit]:
    """The keys of `unit_id`, or of every unit of the registry that has keys."""
    with registry_errors():
        if unit_id is not None:
            return [registry.keys(unit_id)]
        return [registry.keys(u.unit_id) for u in registry.list_units() if u.has_keys]
    raise AssertionError("unreachable")


async def _wired(unit: Any, clear: bool) -> dict[str, Any]:
    """Over the jig's cable: who the unit is, its bonds cleared if asked, and
    service mode asked for at its next boot, which is when the session ends
    and hands the unit back to its app."""
    info = await unit.info()
    cleared = (await unit.clear_bonds())["cleared"] if clear else None
    await unit.open_service()
    return {"unit_id": info.get("unit_id"), "cleared": cleared}


def _paired(
    units: list[KnownUnit], transport: str, timeout: float, list_bonds: bool, clear: bool
) -> dict[str, Any]:
    """Find the unit in service mode, pair, read (and clear) its bonds."""
    from amrkit.unit import RadioUnavailable, Unit, UnitError
    from amrkit.unit.ble import BleLink, PairingError

    async def run() -> dict[str, Any]:
        async with BleLink(units, transport, timeout) as link:
            assert link.found is not None
            unit = Unit(link)
            bonds = await unit.bonds()
            out: dict[str, Any] = {"unit_id": link.found.unit.unit, "bonds": bonds["bonds"]}
            if list_bonds:
                out["hosts"] = bonds["hosts"]
            if clear:
                out["cleared"] = (await unit.clear_bonds())["cleared"]
                out["bonds"] = 0
            return out

    try:
        return asyncio.run(run())
    except RadioUnavailable as err:
        fail(str(err), EXIT_RADIO)
    except PairingError as err:
        fail(str(err), EXIT_KEYS)
    except UnitError as err:
        fail(str(err), EXIT_UNIT)
    except (OSError, ValueError) as err:
        fail(f"cannot open the BLE transport {transport}: {err}", EXIT_RADIO)


@click.command()
@registry_options
@click.option(
    "--port",
    help="Serial port or pyserial URL of the store's jig: service mode is opened over "
    "the wire [else: the wearer's maintenance gesture].",
)
@click.option(
    "--transport",
    required=True,
    help="BLE through bumble on this HCI transport (usb:0, tcp-client:HOST:PORT as "
    "`amr sim` prints).",
)
@click.option(
    "--unit",
    "unit_id",
    callback=lambda _ctx, _param, value: unit_id_option(value),
    help="Only this unit id (16 hex digits) [the unit on --port, else any unit with keys].",
)
@click.option(
    "--bundle",
    type=click.Path(path_type=Path),
    help="Take the keys from this key bundle instead of the registry (nothing is recorded).",
)
@click.option(
    "--passphrase-env",
    default="AMR_BUNDLE_PASSPHRASE",
    show_default=True,
    help="Environment variable holding the bundle passphrase (else it is asked for).",
)
@click.option("--list", "list_bonds", is_flag=True, help="List the bonded hosts' fingerprints.")
@click.option(
    "--clear",
    is_flag=True,
    help="Forget every bonded host: with --port over the wire before pairing (this host "
    "is then the only bond), else over BLE after pairing (none is left).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds to find the unit in service mode.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def pair(
    registry_url: str | None,
    master_key_file: Path | None,
    actor: str | None,
    port: str | None,
    transport: str,
    unit_id: str | None,
    bundle: Path | None,
    passphrase_env: str,
    list_bonds: bool,
    clear: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Pair with a unit over BLE (LE Secure Connections, the passkey derived
    from its keys) and say so, with its bond count; --list lists its bonds,
    --clear clears them. Service mode is opened over the wire (--port, the
    store's jig) or by the maintenance gesture on the unit."""
    registry = None
    who = None
    if bundle is None:
        who = actor_name(actor)
        registry = open_registry(registry_url, master_key_file)
    try:
        _pair(registry, who, port, transport, unit_id, bundle, passphrase_env,
              list_bonds, clear, timeout, as_json)  # fmt: skip
    finally:
        if registry is not None:
            registry.close()


def _pair(
    registry: Registry | None,
    who: str | None,
    port: str | None,
    transport: str,
    unit_id: str | None,
    bundle: Path | None,
    passphrase_env: str,
    list_bonds: bool,
    clear: bool,
    timeout: float,
    as_json: bool,
) -> None:
    from amrkit.unit.ble import select

    wired: dict[str, Any] | None = None
    if port is not None:
        where = resolve_wired_port(port)
        wired = on_wired_unit(where, lambda unit: _wired(unit, clear))
        on_cable = wired["unit_id"]
        if unit_id is not None and on_cable != unit_id:
            fail(f"the unit on {where} is {on_cable}, not {unit_id}: check the jig", 2)
        unit_id = on_cable
        click.echo(
            f"service mode asked over the wire: unit {on_cable} opens it as its app restarts; "
            f"looking for it (up to {timeout:.0f} s)",
            err=True,
        )
    else:
        click.echo(
            f"open service mode on the unit now: the maintenance gesture ({GESTURE}); "
            f"looking for it (up to {timeout:.0f} s)",
            err=True,
        )
    if bundle is not None:
        units = select(bundle_units(bundle, passphrase_env), unit_id)
        source = str(bundle)
    else:
        assert registry is not None
        units = registry_units(registry, unit_id)
        source = "the registry"
    if not units:
        what = f"unit {unit_id} has no keys in {source}" if unit_id else f"no keys in {source}"
        fail(f"{what}: check the id, or provision the unit (amr provision)", EXIT_KEYS)
    result = _paired(units, transport, timeout, list_bonds, clear and wired is None)
    result["paired"] = "bonded (LE Secure Connections, passkey from its keys)"
    if wired is not None and clear:
        result["cleared"] = wired["cleared"]
    if registry is not None:
        assert who is not None
        with registry_errors(), registry.step(who, "pair", result["unit_id"]) as step:
            step.note(
                opened="wire" if wired is not None else "gesture",
                bonds=result["bonds"],
                **({"cleared": result["cleared"]} if clear else {}),
            )
    order = ["unit_id", "paired", "bonds", "hosts", "cleared"]
    result = {k: result[k] for k in order if k in result}
    echo_result(result, as_json)
