"""BLE, always through bleak's public API; :mod:`amrkit.ble.bumble` is the
bleak backend over bumble that the twin and USB HCI dongles are reached with."""
