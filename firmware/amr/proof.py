# Proof of keys: the answer to a host's challenge that shows the unit holds
# the keys of its provisioning, without ever giving a key away
# (docs/protocol.md §11).
#
#   K_proof = E(K_enc, B) xor E(K_id, B) xor E(K_ack, B),
#             B = "AMR1PRF" | 9 x 00            (AES-128-ECB, one block each)
#   MAC     = AES-CMAC(K_proof, "AMR1 proof of keys" | U | u32le(generation) | nonce)
#
# K_proof depends on all three keys, and is used for nothing else. AES-CMAC
# is RFC 4493, built here on cryptolib's AES-ECB as amr/ccm.py builds CCM.
# Pure logic (cryptolib only).
import struct

import cryptolib

from amr.compat import const

_ECB = const(1)
_BLOCK = const(16)
NONCE_LENGTH = const(16)
DOMAIN = b"AMR1 proof of keys"
_KEY_BLOCK = b"AMR1PRF" + bytes(9)


def _double(block):
    """The subkey doubling of RFC 4493 (a left shift in GF(2^128))."""
    out = bytearray(_BLOCK)
    carry = 0
    for i in range(_BLOCK - 1, -1, -1):
        b = block[i]
        out[i] = ((b << 1) | carry) & 0xFF
        carry = b >> 7
    if block[0] & 0x80:
        out[_BLOCK - 1] ^= 0x87
    return out


def cmac(key, message):
    """AES-128-CMAC of message under key: 16 bytes."""
    aes = cryptolib.aes(key, _ECB)
    x = bytearray(_BLOCK)
    aes.encrypt(bytes(_BLOCK), x)  # L = E(K, 0)
    k1 = _double(x)
    n = len(message)
    blocks = (n + _BLOCK - 1) // _BLOCK or 1
    complete = n > 0 and n % _BLOCK == 0
    last = bytearray(_BLOCK)
    tail = message[(blocks - 1) * _BLOCK :]
    for j in range(len(tail)):
        last[j] = tail[j]
    if complete:
        sub = k1
    else:
        last[len(tail)] = 0x80
        sub = _double(k1)
    for j in range(_BLOCK):
        x[j] = 0
    for i in range(blocks - 1):
        for j in range(_BLOCK):
            x[j] ^= message[i * _BLOCK + j]
        aes.encrypt(x, x)
    for j in range(_BLOCK):
        x[j] ^= last[j] ^ sub[j]
    aes.encrypt(x, x)
    return bytes(x)


def proof_key(keys):
    """K_proof from the 56 bytes unit id | K_enc | K_id | K_ack."""
    out = bytearray(_BLOCK)
    block = bytearray(_BLOCK)
    for at in (8, 24, 40):
        cryptolib.aes(bytes(keys[at : at + 16]), _ECB).encrypt(_KEY_BLOCK, block)
        for j in range(_BLOCK):
            out[j] ^= block[j]
    return bytes(out)


def prove(keys, generation, nonce):
    """The MAC that answers a host's 16-byte nonce."""
    if len(nonce) != NONCE_LENGTH:
        raise ValueError("the challenge nonce must be %d bytes" % NONCE_LENGTH)
    message = DOMAIN + bytes(keys[:8]) + struct.pack("<I", generation) + bytes(nonce)
    return cmac(proof_key(keys), message)
