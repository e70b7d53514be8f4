# AES-CCM (RFC 3610) on top of cryptolib's bare AES-ECB block function.
#
# Why by hand: the ESP32 port's cryptolib has ECB and CBC but no CTR mode,
# and CCM needs both halves anyway: a CBC-MAC over B0 | AAD | plaintext for
# the tag, and CTR mode for the secrecy. Both only ever run the block cipher
# forward, so one ECB "encrypt" object serves sealing and opening (a
# cryptolib.aes object may be used for encrypt or decrypt, never both).
#
# Allocation: the MAC state, the counter block and the keystream block are
# bytearrays made once in __init__ and overwritten in place by
# aes.encrypt(in, out); the per-block loops allocate nothing. A call leaves
# behind only its output buffer and the bytes copy it returns.
import cryptolib

from amr.compat import const

_ECB = const(1)
_BLOCK = const(16)
_NONCE_MIN = const(7)
_NONCE_MAX = const(13)
_AAD_SHORT = const(0xFF00)  # below this the AAD length is encoded in 2 bytes


class CCM:
    """AES-128-CCM with a fixed key and MIC length (M).

    The nonce length picks L (the size of the length field): L = 15 - len(nonce).
    """

    def __init__(self, key, mic_len=8):
        if len(key) != 16:
            raise ValueError("key must be 16 bytes")
        if mic_len not in (4, 6, 8, 10, 12, 14, 16):
            raise ValueError("bad MIC length")
        self._aes = cryptolib.aes(key, _ECB)
        self._mic = mic_len
        self._x = bytearray(_BLOCK)  # CBC-MAC chaining value X_i
        self._a = bytearray(_BLOCK)  # CTR counter block A_i
        self._s = bytearray(_BLOCK)  # keystream block S_i = E(A_i)

    # The public methods only forward: a frame this small stays on the C
    # stack, whereas _run's (many locals) is heap-allocated for the call.
    def encrypt(self, nonce, plaintext, aad=b""):
        """Ciphertext followed by the MIC (len(plaintext) + mic_len bytes)."""
        return self._run(nonce, plaintext, aad, False)

    def decrypt(self, nonce, data, aad=b""):
        """The plaintext of ciphertext+MIC `data`, or None if the MIC does not match."""
        return self._run(nonce, data, aad, True)

    def _run(self, nonce, src, aad, opening):
        # One pass over the message: each 16-byte block is absorbed into the
        # CBC-MAC (as plaintext) and XORed with its keystream block.
        n = len(nonce)
        if n < _NONCE_MIN or n > _NONCE_MAX:
            raise ValueError("nonce must be 7..13 bytes")
        q = 15 - n  # L: bytes of the length field / block counter
        mic = self._mic
        mlen = len(src)
        if opening:
            mlen -= mic
            if mlen < 0:
                raise ValueError("data shorter than the MIC")
        if q < 4 and mlen >> (8 * q):
            raise ValueError("message too long for this nonce length")
        out = bytearray(mlen if opening else mlen + mic)
        alen = len(aad)
        aes = self._aes
        x, a, s = self._x, self._a, self._s

        # B_0 = flags | nonce | message length (big-endian, q bytes).
        x[0] = (0x40 if alen else 0) | ((mic - 2) >> 1) << 3 | (q - 1)
        a[0] = q - 1  # A_i flags: only L' = L - 1
        for j in range(n):
            x[1 + j] = a[1 + j] = nonce[j]
        v = mlen
        for j in range(15, n, -1):
            x[j] = v & 0xFF
            v >>= 8
        aes.encrypt(x, x)

        # AAD: its length (2 bytes, or 0xFFFE + 4 bytes), then the AAD, zero
        # padded to a block boundary (padding = XOR with nothing).
        if alen:
            if alen < _AAD_SHORT:
                x[0] ^= alen >> 8
                x[1] ^= alen & 0xFF
                pos = 2
            else:
                x[0] ^= 0xFF
                x[1] ^= 0xFE
                for j in range(4):
                    x[2 + j] ^= (alen >> (24 - 8 * j)) & 0xFF
                pos = 6
            for i in range(alen):
                x[pos] ^= aad[i]
                pos += 1
                if pos == _BLOCK:
                    aes.encrypt(x, x)
                    pos = 0
            if pos:
                aes.encrypt(x, x)

        # Message blocks: counters 1, 2, ... (counter 0 is kept for the MIC).
        ctr = 1
        i = 0
        while i < mlen:
            v = ctr
            for j in range(15, n, -1):
                a[j] = v & 0xFF
                v >>= 8
            aes.encrypt(a, s)
            k = mlen - i
            if k > _BLOCK:
                k = _BLOCK
            if opening:
                for j in range(k):
                    p = src[i + j] ^ s[j]
                    out[i + j] = p
                    x[j] ^= p
            else:
                for j in range(k):
                    p = src[i + j]
                    out[i + j] = p ^ s[j]
                    x[j] ^= p
            aes.encrypt(x, x)  # a short last block is zero padded, as the MAC wants
            i += _BLOCK
            ctr += 1

        # S_0 = E(A_0) encrypts the MAC into the MIC.
        for j in range(15, n, -1):
            a[j] = 0
        aes.encrypt(a, s)
        if opening:
            # OR together the differences from the received MIC, so the
            # time does not depend on where the first wrong byte is.
            diff = 0
            for j in range(mic):
                diff |= src[mlen + j] ^ x[j] ^ s[j]
            if diff:
                return None
        else:
            for j in range(mic):
                out[mlen + j] = x[j] ^ s[j]
        return bytes(out)
