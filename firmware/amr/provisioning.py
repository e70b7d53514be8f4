# The unit's provisioning: key generation, unit id, its three protocol keys
# and its config, in ONE record (kind "P", amr/records.py). A provisioning
# is one SlotStore save, so a power cut at any byte leaves the old record or
# the new one, never new keys beside an old config. The counter state is
# another record (amr/state.py): it outlives provisionings and wipes.
#
# Payload, version 1 (little-endian), 91 bytes:
#   0  u8   version (1)
#   1  u32  key generation: each provisioning of a unit has a higher one
#   5  8    unit id U
#   13 16   K_enc    29 16 K_id    45 16 K_ack
#   61 30   config payload (amr/config.py, its own version byte first)
#
# The wired `provision` command takes  flags u8 | this payload  (flags bit 0:
# force, see amr/commands.py).
#
# Pure logic: bytes in, a Provisioning (or a StoreFault) out.
import struct

from amr.compat import const
from amr.config import CONFIG_SIZE, decode_config, encode_config
from amr.store import StoreFault

VERSION = const(1)
KEYS_AT = const(5)  # the 56 bytes U | K_enc | K_id | K_ack that amr.frame.Sealer takes
KEYS_END = const(61)
PROVISION_SIZE = KEYS_END + CONFIG_SIZE
MAX_GENERATION = const(0xFFFFFFFF)


class Provisioning:
    """What a provisioned unit runs with. `keys` is unit id + the three keys
    (never printed, never in a reply)."""

    def __init__(self, generation, keys, config):
        self.generation = generation
        self.keys = keys
        self.config = config

    @property
    def unit_id(self):
        return self.keys[:8]


def _fault(reason):
    return StoreFault(reason, "%s; provision the unit again from the host" % reason)


def encode_provisioning(generation, keys, config):
    """The record payload; validates the config first (StoreFault if bad)."""
    if not 0 <= generation <= MAX_GENERATION:
        raise _fault("provisioning generation %d out of range" % generation)
    if len(keys) != KEYS_END - KEYS_AT:
        raise _fault("provisioning keys length %d, expected 56" % len(keys))
    return struct.pack("<BI", VERSION, generation) + bytes(keys) + encode_config(config)


def decode_provisioning(payload):
    """Provisioning from a payload; StoreFault naming what is wrong. A bad
    config keeps the config's own reason ("config field ..."), so the app
    can tell a config fault from a key fault."""
    if len(payload) != PROVISION_SIZE:
        raise _fault("provisioning length %d, expected %d" % (len(payload), PROVISION_SIZE))
    version, generation = struct.unpack_from("<BI", payload, 0)
    if version != VERSION:
        raise _fault("provisioning version %d not supported" % version)
    config = decode_config(bytes(payload[KEYS_END:]))
    return Provisioning(generation, bytes(payload[KEYS_AT:KEYS_END]), config)
