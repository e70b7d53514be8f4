"""A bleak backend over bumble, for the twin and for USB HCI dongles, laid
out as bleak lays out its own backends: the scanner backend (:mod:`.scanner`),
the client backend (:mod:`.client`) and the bumble hosts both open, on a
transport or on the in-process virtual radio (:mod:`.link`).

``from amrkit.ble.bumble import bumble_scanner, bumble_client, VirtualRadio``
"""

from amrkit.ble.bumble.client import BumbleClient, bumble_client
from amrkit.ble.bumble.link import (
    BumbleHost,
    HciTcpServer,
    RadioThread,
    VirtualBeacon,
    VirtualRadio,
    lookup_radio,
    open_host,
)
from amrkit.ble.bumble.scanner import (
    ENV_TRANSPORT,
    BumbleDeviceDetails,
    BumbleScanner,
    BumbleScannerArgs,
    Transport,
    bumble_scanner,
    resolve_transport,
    to_advertisement_data,
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
