# Driver: the one owner of the BLE radio. MicroPython's BLE() is a
# singleton whose irq() takes one handler, so the advertiser (radio.py) and
# the GATT server (gatt.py) do not call either: they take the object from
# here and register a handler for the events they serve, as aioble's core
# does. The dispatcher is installed before the stack is first activated, so
# the stack's early requests (stored bond secrets) find their handler.
import bluetooth

_ble: "bluetooth.BLE | None" = None
_handlers: dict = {}  # IRQ event code -> handler(event, data)


def ble() -> bluetooth.BLE:
    """The radio's BLE object, with the dispatcher installed."""
    global _ble
    if _ble is None:
        _ble = bluetooth.BLE()
        _ble.irq(_dispatch)
    return _ble


def handle(events, handler):
    """Send these IRQ events to handler(event, data) from now on."""
    for event in events:
        _handlers[event] = handler


def release(events):
    """No handler for these events any more."""
    for event in events:
        _handlers.pop(event, None)


def _dispatch(event, data):
    handler = _handlers.get(event)
    # An event nobody registered for is dropped; a secret request answers None.
    return handler(event, data) if handler is not None else None
