"""The ESP chips the toolkit knows, in one table read by the board profiles,
the firmware build and the twin's serial emulation (ROM loader, image check)."""

from __future__ import annotations

from typing import NamedTuple


class Chip(NamedTuple):
    """One chip, by esptool's name for it. Chips that boards are made with
    also carry what the build checks a profile's pins against (the chips'
    datasheets and ESP-IDF's sleep and ADC documentation); for the others
    the table knows only the image chip id, to name a foreign image."""

    name: str
    image_id: int  # IMAGE_CHIP_ID in esptool's targets: the chip an app image is built for
    arch: str | None = None  # mpy-cross -march, used only by @micropython.native/viper code
    gpios: int = 0  # GPIO0 .. GPIO(gpios - 1)
    wake: frozenset[int] = frozenset()  # RTC/LP GPIOs: the pins that can wake it from deep sleep
    adc1: frozenset[int] = frozenset()  # ADC1 pins; ADC2 is shared with the radio
    input_only: frozenset[int] = frozenset()

    @property
    def has_boards(self) -> bool:
        return self.arch is not None


CHIPS: dict[str, Chip] = {
    chip.name: chip
    for chip in (
        Chip(
            "ESP32",
            0,
            "xtensawin",
            40,
            frozenset({0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39}),
            frozenset(range(32, 40)),
            frozenset(range(34, 40)),
        ),
        Chip("ESP32-S2", 2, "xtensawin", 47, frozenset(range(22)), frozenset(range(1, 11))),
        Chip("ESP32-C3", 5, "rv32imc", 22, frozenset(range(6)), frozenset(range(5))),
        Chip("ESP32-S3", 9, "xtensawin", 49, frozenset(range(22)), frozenset(range(1, 11))),
        Chip("ESP32-C2", 12),
        Chip("ESP32-C6", 13, "rv32imc", 31, frozenset(range(8)), frozenset(range(7))),
        Chip("ESP32-H2", 16, "rv32imc", 28, frozenset(range(7, 15)), frozenset(range(1, 6))),
        Chip("ESP32-P4", 18),
        Chip("ESP32-C61", 20),
        Chip("ESP32-C5", 23),
        Chip("ESP32-H21", 25),
        Chip("ESP32-H4", 28),
        Chip("ESP32-E22", 31),
        Chip("ESP32-S31", 32),
    )
}
BY_IMAGE_ID: dict[int, Chip] = {chip.image_id: chip for chip in CHIPS.values()}


def chip_named(name: str) -> Chip:
    """The chip for a name such as "ESP32-C3" (or "esp32c3"); ValueError if unknown."""
    wanted = name.upper().replace("-", "")
    for chip in CHIPS.values():
        if chip.name.replace("-", "") == wanted:
            return chip
    raise ValueError(f"unknown chip {name!r}; known: {', '.join(CHIPS)}")
