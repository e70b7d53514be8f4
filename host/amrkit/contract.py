"""The firmware's contract (firmware/amr/contract.py), loaded once and typed
for host code: the numbers the chip's port defines and the control point
that the twin's radio peer, its supervisor and the BLE link agree on."""

from __future__ import annotations

from amrkit.paths import firmware_module

_contract = firmware_module("contract")

# bluetooth.BLE.irq() event codes, scan result types, pairing.
IRQ_CENTRAL_CONNECT: int = _contract.IRQ_CENTRAL_CONNECT
IRQ_CENTRAL_DISCONNECT: int = _contract.IRQ_CENTRAL_DISCONNECT
IRQ_GATTS_WRITE: int = _contract.IRQ_GATTS_WRITE
IRQ_SCAN_RESULT: int = _contract.IRQ_SCAN_RESULT
IRQ_ENCRYPTION_UPDATE: int = _contract.IRQ_ENCRYPTION_UPDATE
IRQ_GET_SECRET: int = _contract.IRQ_GET_SECRET
IRQ_SET_SECRET: int = _contract.IRQ_SET_SECRET
IRQ_PASSKEY_ACTION: int = _contract.IRQ_PASSKEY_ACTION
ADV_IND: int = _contract.ADV_IND
ADV_NONCONN_IND: int = _contract.ADV_NONCONN_IND
PASSKEY_ACTION_DISPLAY: int = _contract.PASSKEY_ACTION_DISPLAY
SECRET_PEER: int = _contract.SECRET_PEER  # the secret type the twin stores: keys for one peer

# Characteristic flags.
FLAG_READ: int = _contract.FLAG_READ
FLAG_WRITE_NO_RESPONSE: int = _contract.FLAG_WRITE_NO_RESPONSE
FLAG_WRITE: int = _contract.FLAG_WRITE
FLAG_READ_ENCRYPTED: int = _contract.FLAG_READ_ENCRYPTED
FLAG_READ_AUTHENTICATED: int = _contract.FLAG_READ_AUTHENTICATED
FLAG_READ_AUTHORIZED: int = _contract.FLAG_READ_AUTHORIZED
FLAG_WRITE_ENCRYPTED: int = _contract.FLAG_WRITE_ENCRYPTED
FLAG_WRITE_AUTHENTICATED: int = _contract.FLAG_WRITE_AUTHENTICATED
FLAG_WRITE_AUTHORIZED: int = _contract.FLAG_WRITE_AUTHORIZED

# Reset causes and wake reasons.
PWRON_RESET: int = _contract.PWRON_RESET
WDT_RESET: int = _contract.WDT_RESET
DEEPSLEEP_RESET: int = _contract.DEEPSLEEP_RESET
SOFT_RESET: int = _contract.SOFT_RESET  # a soft reboot: the jig hands the unit back to its app
TIMER_WAKE: int = _contract.TIMER_WAKE
GPIO_WAKE: int = _contract.GPIO_WAKE

# Service commands the unit runs over the wired link only, and the byte
# between a command's name and its argument on the control point.
WIRED_ONLY: tuple[str, ...] = tuple(_contract.WIRED_ONLY)
ARG_SEPARATOR: int = _contract.ARG_SEPARATOR

# The service commands' control point.
CONTROL_POINT_UUID: str = _contract.CONTROL_POINT_UUID
CHUNK_LAST: int = _contract.CHUNK_LAST
