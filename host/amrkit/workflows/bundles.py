"""Receiver bundles from the registry: the keys of the units one receiver
(a phone or a home gateway) may hear, sealed under a passphrase, and a QR
code of the bundle when it fits one, for a phone to scan.

A unit's keys go to one receiver only. Giving the unit to another receiver
needs new keys first (amr provision), so the first receiver can no longer
verify it; the registry refuses the export otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amrkit.bundle import write_bundle
from amrkit.label import write_qr
from amrkit.registry import Registry


@dataclass(frozen=True)
class Exported:
    path: Path
    units: list[str]
    qr: Path | None


def export_bundle(
    registry: Registry,
    actor: str,
    unit_ids: list[str],
    receiver: str,
    out: Path,
    passphrase: str,
) -> Exported:
    """Write the bundle (and its QR code beside it, when it fits); the
    registry records which receiver each unit's keys went to, all or none."""
    units = [registry.keys(unit_id) for unit_id in unit_ids]
    with registry.steps(actor, "bundle export", unit_ids) as steps:
        for step in steps:
            step.record_export(receiver)
        write_bundle(out, units, passphrase)  # written whole (a rename) or not at all
    qr_path = out.with_name(out.name + ".qr.png")
    qr = qr_path if write_qr(qr_path, out.read_text()) else None
    return Exported(out, [u.unit for u in units], qr)
