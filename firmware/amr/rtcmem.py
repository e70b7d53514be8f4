# Layout of RTC memory, which survives deep sleep but not a power loss:
# length-prefixed diagnostics record, then the app's own bytes, under one
# CRC so that garbage after a power-on is recognised as such.
import struct
from binascii import crc32


def pack(diag_bytes, app_bytes):
    body = struct.pack("<H", len(diag_bytes)) + diag_bytes + app_bytes
    return struct.pack("<H", len(body)) + body + struct.pack("<I", crc32(body) & 0xFFFFFFFF)


def unpack(data):
    """(diagnostics bytes, app bytes), or None if `data` is not ours."""
    if len(data) < 8:
        return None
    (body_len,) = struct.unpack_from("<H", data, 0)
    if 2 + body_len + 4 > len(data):
        return None
    body = bytes(data[2 : 2 + body_len])
    if struct.unpack_from("<I", data, 2 + body_len)[0] != crc32(body) & 0xFFFFFFFF:
        return None
    (diag_len,) = struct.unpack_from("<H", body, 0)
    if 2 + diag_len > body_len:
        return None
    return body[2 : 2 + diag_len], body[2 + diag_len :]
