# Where the unit's records live: one NVS namespace; each record in two slots
# under keys prefix + "0" / prefix + "1" (amr/store.py), tagged with a kind
# byte that load() checks. Shared by the app, the service readout and the
# host's factory image, so they cannot drift apart.
NVS_NAMESPACE = "amr"
CONFIG = ("c", 0x43)  # (key prefix, kind): "C"
STATE = ("s", 0x53)  # "S"
KEYS = ("k", 0x4B)  # "K"
BONDS = ("b", 0x42)  # "B": pairing secrets of bonded hosts (amr/bonds.py)
