"""A unit's USB serial port: an RFC 2217 server in front of a virtual ESP32-C3
dev board, whose DTR/RTS reset it into an emulated ROM download mode (that
real esptool flashes, with its flasher stub or ``--no-stub``) or boot the image in its flash.

    board = VirtualBoard.for_unit(unit_dir, load_board(), on_boot=repl_on_boot(unit_dir))
    with Rfc2217Server(board) as server:
        esptool --port {server.url} write-flash 0x0 firmware.bin
        mpremote connect {server.url} fs cp main.py :main.py   # lands in unit_dir/fs
"""

from amrkit.twin.serial.board import (
    BootContext,
    BootRecord,
    EchoApp,
    Halted,
    OnBoot,
    UartHandler,
    VirtualBoard,
)
from amrkit.twin.serial.flash import DEFAULT_FLASH_SIZE, FLASH_FILE, FlashMemory
from amrkit.twin.serial.image import BootCheck, boot_image_check
from amrkit.twin.serial.repl import RawReplApp, repl_on_boot
from amrkit.twin.serial.rfc2217 import Rfc2217Server
from amrkit.twin.serial.rom import RomLoader

__all__ = [
    "DEFAULT_FLASH_SIZE",
    "FLASH_FILE",
    "BootCheck",
    "BootContext",
    "BootRecord",
    "EchoApp",
    "FlashMemory",
    "Halted",
    "OnBoot",
    "RawReplApp",
    "Rfc2217Server",
    "RomLoader",
    "UartHandler",
    "VirtualBoard",
    "boot_image_check",
    "repl_on_boot",
]
