"""The hardware docs agree with each other: the BOM, the reference design's
netlist in hardware/README.md, and the reference board profile."""

import csv
import re
import tomllib
from pathlib import Path

HARDWARE = Path(__file__).resolve().parents[2] / "hardware"
COLUMNS = [
    "designator",
    "quantity",
    "value",
    "description",
    "manufacturer",
    "part_number",
    "package",
    "notes",
]
# net name on U2's line in the netlist -> the profile key holding its GPIO
NETS = {
    "BTN": ("button", "pin"),
    "VSENSE": ("battery", "adc_pin"),
    "DIV_EN": ("battery", "divider_enable_pin"),
    "HAPTIC_EN": ("indicator", "pin"),
}


def bom_rows() -> list[dict[str, str]]:
    with open(HARDWARE / "bom.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def netlist() -> list[str]:
    """The lines of the reference design's netlist: the first fenced block
    after the "## Reference design" heading."""
    text = (HARDWARE / "README.md").read_text()
    section = text.split("## Reference design", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block, "no netlist block under '## Reference design'"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_bom_parses_with_positive_quantities_matching_designators():
    rows = bom_rows()
    assert rows
    for row in rows:
        designators = [d.strip() for d in row["designator"].split(",")]
        assert row["quantity"].isdigit() and int(row["quantity"]) > 0, row
        assert int(row["quantity"]) == len(designators), row
        assert row["part_number"].strip() and row["manufacturer"].strip(), row


def test_netlist_and_bom_name_the_same_parts():
    in_bom = [d.strip() for row in bom_rows() for d in row["designator"].split(",")]
    in_netlist = [line.split()[0] for line in netlist()]
    assert len(in_bom) == len(set(in_bom)), "a designator appears twice in the BOM"
    assert len(in_netlist) == len(set(in_netlist)), "a designator appears twice in the netlist"
    assert set(in_netlist) == set(in_bom)


def test_netlist_pins_match_the_reference_profile():
    with open(HARDWARE / "boards" / "esp32c3-coin.toml", "rb") as f:
        profile = tomllib.load(f)
    u2 = next(line for line in netlist() if line.split()[0] == "U2")
    pins = {net: int(gpio) for gpio, net in re.findall(r"\bIO(\d+)=(\w+)", u2)}
    for net, (table, key) in NETS.items():
        assert pins.get(net) == profile[table][key], f"{net}: netlist vs [{table}] {key}"
