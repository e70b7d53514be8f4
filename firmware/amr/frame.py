# Alert protocol v2 frames (docs/protocol.md), built on cryptolib's AES-ECB:
# a rolling identifier that only the key holder can link to the unit, then
# the AES-CCM sealed plaintext carrying the unit's clock (the counter is in
# the nonce). The whole advertising payload is 31 bytes, whatever the kind,
# so kinds cannot be told apart.
import struct

import cryptolib

from amr.ccm import CCM
from amr.compat import const

ALERT = const(1)
ALERT_RETRANSMISSION = const(2)
HEARTBEAT = const(3)
TEST_PRESS = const(4)
LOW_BATTERY = const(5)
FAULT = const(6)

FLAG_LOW_BATTERY = const(0x01)
FLAG_FAULT = const(0x02)
FLAG_BELOW_FLOOR = const(0x04)

AD_LENGTH = const(31)
KEYS_LENGTH = const(56)  # unit id (8) + enc, id and ack keys (16 each)
_VERSION = const(2)
_NONCE_TAIL = const(1)  # the nonce's last byte, unchanged since v1
_MIC = const(8)
_ECB = const(1)
_PLAINTEXT = "<BIIBBBB"


def service_ad(nonce, token):
    """Service-mode advertising: one manufacturer-specific structure holding
    a random nonce u32 and the unit's token for it; no flags (the unit is
    connectable, not discoverable: a host finds it by the token) and no
    service UUID, so only the AD header is constant."""
    return b"\x0d\xff" + nonce.to_bytes(4, "little") + token


class Sealer:
    """Seals frames with one unit's keys; holds its buffers for reuse."""

    def __init__(self, keys):
        if len(keys) != KEYS_LENGTH:
            raise ValueError("unit keys must be %d bytes" % KEYS_LENGTH)
        self.unit_id = bytes(keys[:8])
        self._ccm = CCM(bytes(keys[8:24]), _MIC)
        self._id = cryptolib.aes(bytes(keys[24:40]), _ECB)
        self._ack = cryptolib.aes(bytes(keys[40:56]), _ECB)
        self._block = bytearray(16)
        self._out = bytearray(16)
        self._plain = bytearray(13)
        self._nonce = bytearray(13)
        self._nonce[12] = _NONCE_TAIL

    def _tag(self, aes, prefix, value):
        block = self._block
        block[0:7] = prefix
        struct.pack_into("<I", block, 7, value)
        block[11:16] = b"\x00\x00\x00\x00\x00"
        aes.encrypt(block, self._out)
        return bytes(self._out[:8])

    def rid(self, counter):
        return self._tag(self._id, b"AMR1RID", counter)

    def ack_tag(self, alert_id):
        return self._tag(self._ack, b"AMR1ACK", alert_id)

    def service_token(self, nonce):
        """What service-mode advertising carries with `nonce`, so that a key
        holder can tell which unit it is and nobody else can link it."""
        return self._tag(self._id, b"AMR1SVC", nonce)

    def passkey(self, nonce):
        """The 6-digit pairing passkey of the service session advertising
        `nonce`; the host derives it from the same key and the nonce it hears."""
        return int.from_bytes(self._tag(self._id, b"AMR1PIN", nonce)[:4], "little") % 1000000

    def seal(self, kind, counter, alert_id=0, attempt=0, battery_pct=255, flags=0, clock_s=0):
        """The 31-byte advertising payload of one frame; clock_s is the RTC
        clock in seconds, which lets the receiver tell a frame held back."""
        rid = self.rid(counter)
        struct.pack_into(
            _PLAINTEXT,
            self._plain,
            0,
            _VERSION << 4 | kind,
            clock_s & 0xFFFFFFFF,
            alert_id,
            attempt if attempt < 255 else 255,
            battery_pct,
            flags,
            0,
        )
        nonce = self._nonce
        struct.pack_into("<I", nonce, 0, counter)
        nonce[4:12] = rid
        return b"\x1e\xff" + rid + self._ccm.encrypt(nonce, self._plain, rid)
