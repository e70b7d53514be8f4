"""BLE through bleak's public API, with a bumble backend for the twin and HCI dongles.

``from amrkit.ble import BumbleScanner, bumble_scanner, VirtualRadio`` - see
:mod:`amrkit.ble.bumble_backend` and :mod:`amrkit.ble.link`.
"""

from amrkit.ble.bumble_backend import (
    ENV_TRANSPORT,
    BumbleDeviceDetails,
    BumbleScanner,
    BumbleScannerArgs,
    Transport,
    bumble_scanner,
    resolve_transport,
    to_advertisement_data,
)
from amrkit.ble.link import (
    BumbleHost,
    HciTcpServer,
    RadioThread,
    VirtualBeacon,
    VirtualRadio,
    lookup_radio,
    open_host,
)

__all__ = [
    "ENV_TRANSPORT",
    "BumbleDeviceDetails",
    "BumbleHost",
    "BumbleScanner",
    "BumbleScannerArgs",
    "HciTcpServer",
    "RadioThread",
    "Transport",
    "VirtualBeacon",
    "VirtualRadio",
    "bumble_scanner",
    "lookup_radio",
    "open_host",
    "resolve_transport",
    "to_advertisement_data",
]
