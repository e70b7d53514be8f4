# Where the unit's records live: one NVS namespace; each record in two slots
# under keys prefix + "0" / prefix + "1" (amr/store.py), tagged with a kind
# byte that load() checks. Shared by the app, the service readout and the
# host's factory image, so they cannot drift apart.
#
# PROVISION holds the key generation, unit id, keys and config in one record
# (amr/provisioning.py), so one save replaces them all at once. STATE (the
# counters, amr/state.py) is separate: it outlives provisionings and wipes,
# so that no counter is ever used twice.
NVS_NAMESPACE = "amr"
PROVISION = ("p", 0x50)  # (key prefix, kind): "P"
STATE = ("s", 0x53)  # "S"
BONDS = ("b", 0x42)  # "B": pairing secrets of bonded hosts (amr/bonds.py)
