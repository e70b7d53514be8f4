"""Units as CSV, for the store's spreadsheets: record fields only, no keys."""

from __future__ import annotations

import csv
from typing import TextIO

from amrkit.registry.records import UnitRecord


def write_units_csv(out: TextIO, units: list[UnitRecord]) -> int:
    writer = csv.writer(out)
    columns = UnitRecord.columns()
    writer.writerow(columns)
    for unit in units:
        row = unit.as_dict()
        writer.writerow(["" if row[c] is None else _safe(str(row[c])) for c in columns])
    return len(units)


def _safe(value: str) -> str:
    """No formula injection when the file is opened in a spreadsheet."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value
