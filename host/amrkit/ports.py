"""Finding a unit's USB serial port when none is named (`amr flash`, and any
wired verb: ``resolve_port(args.port)``).

A port is a candidate when its USB VID:PID is one of the bridges ESP32 boards
use (or the C3/C6/H2's own USB-Serial-JTAG). Sources:
  - Espressif USB-Serial-JTAG 303a:1001: ESP-IDF docs, "USB Serial/JTAG
    Controller Console" (docs.espressif.com/projects/esp-idf/en/latest/esp32c3/
    api-guides/usb-serial-jtag-console.html), and esptool's
    USB_JTAG_SERIAL_PID = 0x1001 (esptool/loader.py);
  - Silicon Labs CP210x 10c4:ea60: Silicon Labs AN571 / Linux drivers/usb/serial/cp210x.c;
  - WCH CH340 1a86:7523 and CH9102 1a86:55d4: Linux drivers/usb/serial/ch341.c
    and drivers/usb/class/cdc-acm.c (CH9102 is a CDC-ACM device);
  - FTDI FT232R 0403:6001: Linux drivers/usb/serial/ftdi_sio_ids.h.
"""

from __future__ import annotations

from dataclasses import dataclass

from serial.tools import list_ports  # type: ignore[import-untyped]

KNOWN_BRIDGES: dict[tuple[int, int], str] = {
    (0x303A, 0x1001): "Espressif USB-Serial-JTAG",
    (0x10C4, 0xEA60): "Silicon Labs CP210x",
    (0x1A86, 0x7523): "WCH CH340",
    (0x1A86, 0x55D4): "WCH CH9102",
    (0x0403, 0x6001): "FTDI FT232R",
}


class PortError(LookupError):
    """No port given and none, or more than one, found. ``several`` lists them."""

    def __init__(self, message: str, several: list[str] | None = None) -> None:
        super().__init__(message)
        self.several = several or []


@dataclass(frozen=True)
class FoundPort:
    device: str
    bridge: str
    serial_number: str | None
    description: str

    def describe(self) -> str:
        serial = f", serial {self.serial_number}" if self.serial_number else ""
        return f"{self.device} ({self.bridge}{serial})"


def candidate_ports() -> list[FoundPort]:
    """USB serial ports whose VID:PID is a known ESP bridge, by device name."""
    found = []
    for info in list_ports.comports():
        vid, pid = getattr(info, "vid", None), getattr(info, "pid", None)
        if vid is None or pid is None or (vid, pid) not in KNOWN_BRIDGES:
            continue
        found.append(
            FoundPort(
                info.device,
                KNOWN_BRIDGES[(vid, pid)],
                getattr(info, "serial_number", None),
                str(getattr(info, "description", "") or ""),
            )
        )
    return sorted(found, key=lambda p: p.device)


def resolve_port(port: str | None) -> str:
    """``port`` if given; else the one USB serial port of a known ESP bridge.
    PortError when there is none, or several (``several`` lists them)."""
    if port:
        return port
    found = candidate_ports()
    if len(found) == 1:
        return found[0].device
    if not found:
        known = ", ".join(f"{v:04x}:{p:04x} {n}" for (v, p), n in KNOWN_BRIDGES.items())
        raise PortError(
            "no unit found on USB: plug one in (a data cable, not a charge-only one) "
            f"or name its port with --port; looked for {known}"
        )
    listing = "\n".join(f"  {p.describe()}" for p in found)
    raise PortError(
        f"{len(found)} units found on USB; name one with --port:\n{listing}",
        several=[p.device for p in found],
    )
