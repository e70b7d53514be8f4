"""BLE, always through bleak's public API; :mod:`amrkit.ble.bumble` is the
bleak backend over bumble that the twin and USB HCI dongles are reached with."""

# How a bumble transport is named, for messages.
TRANSPORT_FORMS = "usb:N (an HCI dongle), serial:/dev/ttyX, tcp-client:HOST:PORT (`amr sim`)"


def transport_trouble(transport: str, err: BaseException) -> str:
    """Why a bumble transport would not open, and what to check, in one line
    (`err`: the error bleak raised, its cause the transport's own)."""
    cause = err.__cause__ or err
    scheme = transport.partition(":")[0]
    if "unknown transport scheme" in str(cause):
        return f"cannot open the BLE transport {transport}: unknown scheme; use {TRANSPORT_FORMS}"
    if scheme == "usb":
        check = "is the USB Bluetooth dongle plugged in (and may this user open it)?"
    elif scheme.startswith(("tcp", "udp", "ws")):
        check = "is `amr sim` (or the HCI bridge) running at that address?"
    else:
        check = f"check the device; forms: {TRANSPORT_FORMS}"
    return f"cannot open the BLE transport {transport}: {cause}; {check}"
