"""BLE through bleak's public API, with a bumble backend for the twin and HCI dongles.

``from amrkit.ble import BumbleScanner, bumble_scanner, BumbleClient, bumble_client,
VirtualRadio`` - see :mod:`amrkit.ble.bumble_backend`, :mod:`amrkit.ble.bumble_client`
and :mod:`amrkit.ble.link`.
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
from amrkit.ble.bumble_client import BumbleClient, bumble_client
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
    "BumbleClient",
    "BumbleDeviceDetails",
    "BumbleHost",
    "BumbleScanner",
    "BumbleScannerArgs",
    "HciTcpServer",
    "RadioThread",
    "Transport",
    "VirtualBeacon",
    "VirtualRadio",
    "bumble_client",
    "bumble_scanner",
    "lookup_radio",
    "open_host",
    "resolve_transport",
    "to_advertisement_data",
]
