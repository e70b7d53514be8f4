# amr.ccm under the MicroPython unix port: RFC 3610 vectors, the BTHome v2
# example, cases computed with CPython's `cryptography` (AESCCM), and
# tamper/argument checks.
import random

from amr.ccm import CCM

# --- RFC 3610 section 8, packet vectors #1-#24 --------------------------------
# Each packet starts with 8 or 12 cleartext header octets (the AAD); L = 2
# (13-byte nonces). #1-#6 and #13-#18 use M = 8, #7-#12 and #19-#24 M = 10.
# The outputs below are the RFC's published "Authenticated and Encrypted
# Output" (header + ciphertext + MIC); all 24, inputs included, were also
# checked against cryptography's AESCCM.
KEY_1_12 = bytes(range(0xC0, 0xD0))
KEY_13_24 = bytes.fromhex("D7 82 8D 13 B2 B0 BD C3 25 A7 62 36 DF 93 CC 6B")


def rfc_1_12(number):
    """(nonce, packet, header length, M) of packet vector #1..#12."""
    i = number - 1
    b = 3 + i  # nonce 00 00 00 03 02 01 00 A0..A5 for #1, counting up
    nonce = bytes((0, 0, 0, b, b - 1, b - 2, b - 3)) + bytes.fromhex("A0 A1 A2 A3 A4 A5")
    packet = bytes(range(31 + i % 3))  # 31, 32, 33 octets, repeating
    header = 8 if (i // 3) % 2 == 0 else 12
    return nonce, packet, header, 8 if number <= 6 else 10


RFC_OUT_1_12 = (
    "00 01 02 03 04 05 06 07 58 8C 97 9A 61 C6 63 D2 F0 66 D0 C2 C0 F9 89 80 6D 5F 6B 61 DA C3"
    " 84 17 E8 D1 2C FD F9 26 E0",
    "00 01 02 03 04 05 06 07 72 C9 1A 36 E1 35 F8 CF 29 1C A8 94 08 5C 87 E3 CC 15 C4 39 C9 E4"
    " 3A 3B A0 91 D5 6E 10 40 09 16",
    "00 01 02 03 04 05 06 07 51 B1 E5 F4 4A 19 7D 1D A4 6B 0F 8E 2D 28 2A E8 71 E8 38 BB 64 DA"
    " 85 96 57 4A DA A7 6F BD 9F B0 C5",
    "00 01 02 03 04 05 06 07 08 09 0A 0B A2 8C 68 65 93 9A 9A 79 FA AA 5C 4C 2A 9D 4A 91 CD AC"
    " 8C 96 C8 61 B9 C9 E6 1E F1",
    "00 01 02 03 04 05 06 07 08 09 0A 0B DC F1 FB 7B 5D 9E 23 FB 9D 4E 13 12 53 65 8A D8 6E BD"
    " CA 3E 51 E8 3F 07 7D 9C 2D 93",
    "00 01 02 03 04 05 06 07 08 09 0A 0B 6F C1 B0 11 F0 06 56 8B 51 71 A4 2D 95 3D 46 9B 25 70"
    " A4 BD 87 40 5A 04 43 AC 91 CB 94",
    "00 01 02 03 04 05 06 07 01 35 D1 B2 C9 5F 41 D5 D1 D4 FE C1 85 D1 66 B8 09 4E 99 9D FE D9"
    " 6C 04 8C 56 60 2C 97 AC BB 74 90",
    "00 01 02 03 04 05 06 07 7B 75 39 9A C0 83 1D D2 F0 BB D7 58 79 A2 FD 8F 6C AE 6B 6C D9 B7"
    " DB 24 C1 7B 44 33 F4 34 96 3F 34 B4",
    "00 01 02 03 04 05 06 07 82 53 1A 60 CC 24 94 5A 4B 82 79 18 1A B5 C8 4D F2 1C E7 F9 B7 3F"
    " 42 E1 97 EA 9C 07 E5 6B 5E B1 7E 5F 4E",
    "00 01 02 03 04 05 06 07 08 09 0A 0B 07 34 25 94 15 77 85 15 2B 07 40 98 33 0A BB 14 1B 94"
    " 7B 56 6A A9 40 6B 4D 99 99 88 DD",
    "00 01 02 03 04 05 06 07 08 09 0A 0B 67 6B B2 03 80 B0 E3 01 E8 AB 79 59 0A 39 6D A7 8B 83"
    " 49 34 F5 3A A2 E9 10 7A 8B 6C 02 2C",
    "00 01 02 03 04 05 06 07 08 09 0A 0B C0 FF A0 D6 F0 5B DB 67 F2 4D 43 A4 33 8D 2A A4 BE D7"
    " B2 0E 43 CD 1A A3 16 62 E7 AD 65 D6 DB",
)

# (nonce, packet, header length, RFC output) of #13..#24.
RFC_13_24 = (
    (
        "00 41 2B 4E A9 CD BE 3C 96 96 76 6C FA",
        "0B E1 A8 8B AC E0 18 B1 08 E8 CF 97 D8 20 EA 25 84 60 E9 6A D9 CF 52 89 05 4D 89 5C EA C4"
        " 7C",
        8,
        "0B E1 A8 8B AC E0 18 B1 4C B9 7F 86 A2 A4 68 9A 87 79 47 AB 80 91 EF 53 86 A6 FF BD D0 80"
        " F8 E7 8C F7 CB 0C DD D7 B3",
    ),
    (
        "00 33 56 8E F7 B2 63 3C 96 96 76 6C FA",
        "63 01 8F 76 DC 8A 1B CB 90 20 EA 6F 91 BD D8 5A FA 00 39 BA 4B AF F9 BF B7 9C 70 28 94 9C"
        " D0 EC",
        8,
        "63 01 8F 76 DC 8A 1B CB 4C CB 1E 7C A9 81 BE FA A0 72 6C 55 D3 78 06 12 98 C8 5C 92 81 4A"
        " BC 33 C5 2E E8 1D 7D 77 C0 8A",
    ),
    (
        "00 10 3F E4 13 36 71 3C 96 96 76 6C FA",
        "AA 6C FA 36 CA E8 6B 40 B9 16 E0 EA CC 1C 00 D7 DC EC 68 EC 0B 3B BB 1A 02 DE 8A 2D 1A A3"
        " 46 13 2E",
        8,
        "AA 6C FA 36 CA E8 6B 40 B1 D2 3A 22 20 DD C0 AC 90 0D 9A A0 3C 61 FC F4 A5 59 A4 41 77 67"
        " 08 97 08 A7 76 79 6E DB 72 35 06",
    ),
    (
        "00 76 4C 63 B8 05 8E 3C 96 96 76 6C FA",
        "D0 D0 73 5C 53 1E 1B EC F0 49 C2 44 12 DA AC 56 30 EF A5 39 6F 77 0C E1 A6 6B 21 F7 B2 10"
        " 1C",
        12,
        "D0 D0 73 5C 53 1E 1B EC F0 49 C2 44 14 D2 53 C3 96 7B 70 60 9B 7C BB 7C 49 91 60 28 32 45"
        " 26 9A 6F 49 97 5B CA DE AF",
    ),
    (
        "00 F8 B6 78 09 4E 3B 3C 96 96 76 6C FA",
        "77 B6 0F 01 1C 03 E1 52 58 99 BC AE E8 8B 6A 46 C7 8D 63 E5 2E B8 C5 46 EF B5 DE 6F 75 E9"
        " CC 0D",
        12,
        "77 B6 0F 01 1C 03 E1 52 58 99 BC AE 55 45 FF 1A 08 5E E2 EF BF 52 B2 E0 4B EE 1E 23 36 C7"
        " 3E 3F 76 2C 0C 77 44 FE 7E 3C",
    ),
    (
        "00 D5 60 91 2D 3F 70 3C 96 96 76 6C FA",
        "CD 90 44 D2 B7 1F DB 81 20 EA 60 C0 64 35 AC BA FB 11 A8 2E 2F 07 1D 7C A4 A5 EB D9 3A 80"
        " 3B A8 7F",
        12,
        "CD 90 44 D2 B7 1F DB 81 20 EA 60 C0 00 97 69 EC AB DF 48 62 55 94 C5 92 51 E6 03 57 22 67"
        " 5E 04 C8 47 09 9E 5A E0 70 45 51",
    ),
    (
        "00 42 FF F8 F1 95 1C 3C 96 96 76 6C FA",
        "D8 5B C7 E6 9F 94 4F B8 8A 19 B9 50 BC F7 1A 01 8E 5E 67 01 C9 17 87 65 98 09 D6 7D BE DD"
        " 18",
        8,
        "D8 5B C7 E6 9F 94 4F B8 BC 21 8D AA 94 74 27 B6 DB 38 6A 99 AC 1A EF 23 AD E0 B5 29 39 CB"
        " 6A 63 7C F9 BE C2 40 88 97 C6 BA",
    ),
    (
        "00 92 0F 40 E5 6C DC 3C 96 96 76 6C FA",
        "74 A0 EB C9 06 9F 5B 37 17 61 43 3C 37 C5 A3 5F C1 F3 9F 40 63 02 EB 90 7C 61 63 BE 38 C9"
        " 84 37",
        8,
        "74 A0 EB C9 06 9F 5B 37 58 10 E6 FD 25 87 40 22 E8 03 61 A4 78 E3 E9 CF 48 4A B0 4F 44 7E"
        " FF F6 F0 A4 77 CC 2F C9 BF 54 89 44",
    ),
    (
        "00 27 CA 0C 71 20 BC 3C 96 96 76 6C FA",
        "44 A3 AA 3A AE 64 75 CA A4 34 A8 E5 85 00 C6 E4 15 30 53 88 62 D6 86 EA 9E 81 30 1B 5A E4"
        " 22 6B FA",
        8,
        "44 A3 AA 3A AE 64 75 CA F2 BE ED 7B C5 09 8E 83 FE B5 B3 16 08 F8 E2 9C 38 81 9A 89 C8 E7"
        " 76 F1 54 4D 41 51 A4 ED 3A 8B 87 B9 CE",
    ),
    (
        "00 5B 8C CB CD 9A F8 3C 96 96 76 6C FA",
        "EC 46 BB 63 B0 25 20 C3 3C 49 FD 70 B9 6B 49 E2 1D 62 17 41 63 28 75 DB 7F 6C 92 43 D2 D7"
        " C2",
        12,
        "EC 46 BB 63 B0 25 20 C3 3C 49 FD 70 31 D7 50 A0 9D A3 ED 7F DD D4 9A 20 32 AA BF 17 EC 8E"
        " BF 7D 22 C8 08 8C 66 6B E5 C1 97",
    ),
    (
        "00 3E BE 94 04 4B 9A 3C 96 96 76 6C FA",
        "47 A6 5A C7 8B 3D 59 42 27 E8 5E 71 E2 FC FB B8 80 44 2C 73 1B F9 51 67 C8 FF D7 89 5E 33"
        " 70 76",
        12,
        "47 A6 5A C7 8B 3D 59 42 27 E8 5E 71 E8 82 F1 DB D3 8C E3 ED A7 C2 3F 04 DD 65 07 1E B4 13"
        " 42 AC DF 7E 00 DC CE C7 AE 52 98 7D",
    ),
    (
        "00 8D 49 3B 30 AE 8B 3C 96 96 76 6C FA",
        "6E 37 A6 EF 54 6D 95 5D 34 AB 60 59 AB F2 1C 0B 02 FE B8 8F 85 6D F4 A3 73 81 BC E3 CC 12"
        " 85 17 D4",
        12,
        "6E 37 A6 EF 54 6D 95 5D 34 AB 60 59 F3 29 05 B8 8A 64 1B 04 B9 C9 FF B5 8C C3 90 90 0F 3D"
        " A1 2A B1 6D CE 9E 82 EF A1 6D A6 20 59",
    ),
)


def rfc_vectors():
    """(number, key, nonce, packet, header length, M, output) for #1..#24."""
    out = []
    for number in range(1, 13):
        nonce, packet, header, mic = rfc_1_12(number)
        expected = bytes.fromhex(RFC_OUT_1_12[number - 1])
        out.append((number, KEY_1_12, nonce, packet, header, mic, expected))
    for i in range(12):
        nonce, packet, header, expected = RFC_13_24[i]
        number = 13 + i
        mic = 8 if number <= 18 else 10
        out.append(
            (
                number,
                KEY_13_24,
                bytes.fromhex(nonce),
                bytes.fromhex(packet),
                header,
                mic,
                bytes.fromhex(expected),
            )
        )
    return out


def test_rfc3610_all_24_vectors_listed():
    vectors = rfc_vectors()
    assert [v[0] for v in vectors] == list(range(1, 25))
    for number, _key, nonce, packet, header, mic, expected in vectors:
        assert len(nonce) == 13, number
        assert len(expected) == len(packet) + mic, number
        assert expected[:header] == packet[:header], number


def test_rfc3610_encrypt():
    for number, key, nonce, packet, header, mic, expected in rfc_vectors():
        sealed = CCM(key, mic).encrypt(nonce, packet[header:], packet[:header])
        assert packet[:header] + sealed == expected, (number, sealed.hex())


def test_rfc3610_decrypt():
    for number, key, nonce, packet, header, mic, expected in rfc_vectors():
        opened = CCM(key, mic).decrypt(nonce, expected[header:], expected[:header])
        assert opened == packet[header:], number


def test_rfc3610_vector_1_fields():
    # Spelled out once: #1 is 23 bytes of ciphertext, then the MIC 17 E8 D1 2C FD F9 26 E0.
    sealed = CCM(KEY_1_12, 8).encrypt(
        bytes.fromhex("00 00 00 03 02 01 00 A0 A1 A2 A3 A4 A5"),
        bytes(range(8, 31)),
        bytes(range(8)),
    )
    assert sealed[:23] == bytes.fromhex(
        "58 8C 97 9A 61 C6 63 D2 F0 66 D0 C2 C0 F9 89 80 6D 5F 6B 61 DA C3 84"
    )
    assert sealed[23:] == bytes.fromhex("17 E8 D1 2C FD F9 26 E0")


# --- BTHome v2 encryption example (bthome.io/encryption) ----------------------
# Key 231d39c1..., MAC 54:48:E6:8F:80:A5, UUID 0xFCD2 (d2 fc), device info 0x41,
# payload 02 CA 09 03 BF 13 (temperature 25.06 °C, humidity 50.55 %), M = 4,
# no AAD. nonce = MAC + d2 fc + 41 + counter bytes.
# - counter bytes 00 11 22 33: ciphertext a4 72 66 c9 5f 73, MIC 78 23 72 14.
#   (The brief guessed "a4 75 04 0a 36 ..."; cryptography's AESCCM and the
#   bthome-ble example frame 41 a47266c95f73 00112233 78237214 both say the
#   above.)
# - counter 0x00112233 sent little-endian (bytes 33 22 11 00), the current
#   bthome.io frame 41 e445f3c9962b 33221100 6c7c4519: ciphertext
#   e4 45 f3 c9 96 2b, MIC 6c 7c 45 19.
# Both pairs were computed with cryptography's AESCCM(key, tag_length=4).
BTHOME_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
BTHOME_PAYLOAD = bytes.fromhex("02CA0903BF13")
BTHOME_CASES = (
    ("00112233", "a47266c95f73", "78237214"),
    ("33221100", "e445f3c9962b", "6c7c4519"),
)


def bthome_nonce(counter_hex):
    return bytes.fromhex("5448E68F80A5") + b"\xd2\xfc" + b"\x41" + bytes.fromhex(counter_hex)


def test_bthome_v2_example_encrypt():
    ccm = CCM(BTHOME_KEY, 4)
    for counter, ciphertext, mic in BTHOME_CASES:
        nonce = bthome_nonce(counter)
        assert len(nonce) == 13
        sealed = ccm.encrypt(nonce, BTHOME_PAYLOAD)
        assert sealed == bytes.fromhex(ciphertext + mic), (counter, sealed.hex())


def test_bthome_v2_example_decrypt():
    ccm = CCM(BTHOME_KEY, 4)
    for counter, ciphertext, mic in BTHOME_CASES:
        data = bytes.fromhex(ciphertext + mic)
        assert ccm.decrypt(bthome_nonce(counter), data) == BTHOME_PAYLOAD
        assert ccm.decrypt(bthome_nonce(counter), data, b"\x00") is None


# --- Cases computed with cryptography's AESCCM --------------------------------
# random.Random(3610) in CPython: key, nonce 7..13 bytes, plaintext 0..40
# bytes, AAD 0..20 bytes; M alternating 4 and 8.
# (M, key, nonce, plaintext, AAD, ciphertext + MIC)
RANDOM_CASES = (
    (
        4,
        "6276023baec6c1de17cf5cb6db3cc785",
        "899352296b12827c",
        "380dbe21b431189f7b19f97934b7bd2469e0845557131785e093bb2fe879e53b39a89b",
        "f42b1974336d17d1",
        "d0631a374cab1b83554e42c1314632b5170b02c96ecf55049268cb20bfb56c3c80705244b92302",
    ),
    (
        8,
        "35b6290816e3b4529d694c900145b0f5",
        "78b37cce1c908ad9",
        "7b5fd27612a83c10ad8333cebeb85f71830fb6c7d0bc",
        "f6da7f08ae",
        "b77a2365b99afd1159e37988cb6f04864c33d9d53083a36db147fc54447f",
    ),
    (
        4,
        "6ca020edc65d2a51ff0beffd795d644e",
        "7fa48a07b2e7ecec1b",
        "30ba7bd57f6ef8fd26538cafdd5c9a62f782168b7efe3d2e66d0a195",
        "fda2849e2cd1377b4234adabd6d3",
        "da120420cf6672a2da99c678f3a206ed57e7b3d01d8a9585a5f9fa26b8eea938",
    ),
    (
        8,
        "8a663fb4a9be2c36ee2d7bb0ca8c22eb",
        "0e3473f35dc7d81312",
        "c4f46f52abfc58b44b6631867a7477ee3e",
        "9285fa379aeb9040fcdf583494c2",
        "921a52ae909368aa5b0c7635eecb4b51e6fec3a4f8b7cf4bed",
    ),
    (
        4,
        "378474cad47999bf9ac77ba5179adfb2",
        "b1de45e5872cc9",
        "b151cb276a0affe553a28412d028b7e35207bb22de9821a6bfa5377f1abf8ee92e8d",
        "d7d914be2fba5f57d83813a40e90",
        "2fb8289e5f5028c1e111bb249b8cde2247430678be163361363b461e152675721e18e5516371",
    ),
    (
        8,
        "d964058569ce712f484eea973973c16b",
        "132e8e363e2953288c63bdd950",
        "b3b9d468f3",
        "74d4b6d20ee861aa62e783b484eace87",
        "20ae2285d76d5659b4cd8a7ce6",
    ),
    (
        4,
        "fea1101b5649968f7f8472763426c374",
        "0689b7e89e0a944af04c",
        "350ab1ba0ebfcf521eda1ac1c03de0f2ba155bdf21d44da8e26f03f2f0a5b42758",
        "0371e568b4",
        "405573d1a45f588781fa18671bd241e10cbedd712113f867b54d22a9eb64ef5dff0c6f5de7",
    ),
    (
        8,
        "80f757fccb057a864bc2d1e2c6db51b2",
        "9571b54f03cd46315aec2faa",
        "069151a115f8c6a3e31c97ecc644103098984908",
        "530e9217057662dcb2f07d897b32d7",
        "f6481f3d26631b5d9ba0f3201550c8f4f4d75c10810a2e2c8d9d54ad",
    ),
)

# Block boundaries: key 40..4f, nonce 10..1c, plaintext[i] = 7i + 3 and
# AAD[i] = 11i + 5 (mod 256). 16 + 14 fills the first AAD block exactly
# (2 length bytes + 14), 32 + 30 two, 48 with no AAD, M = 4..16.
# (plaintext length, AAD length, M, ciphertext + MIC)
EDGE_KEY = bytes(range(0x40, 0x50))
EDGE_NONCE = bytes(range(0x10, 0x1D))
EDGE_CASES = (
    (16, 14, 8, "4aba6e962587cd247903a1ed053ee022df2ace259dbcea4d"),
    (32, 30, 8, "4aba6e962587cd247903a1ed053ee02219ab4ea41567e757170906d2bdcf24913209a5869c4e0a65"),
    (15, 16, 4, "4aba6e962587cd247903a1ed053ee0c2288d34"),
    (17, 13, 16, "4aba6e962587cd247903a1ed053ee0221936af173c188dd29b637a47216fcf3797"),
    (
        48,
        0,
        6,
        "4aba6e962587cd247903a1ed053ee02219ab4ea41567e757170906d2bdcf2491"
        "9147cf025b701896fcdf81e1241a315fc5550d657fc8",
    ),
    (0, 1, 12, "f1baa89724ba18d087ae34e3"),
)


def test_random_cases_match_cryptography():
    for mic, key, nonce, plain, aad, expected in RANDOM_CASES:
        ccm = CCM(bytes.fromhex(key), mic)
        nonce, plain = bytes.fromhex(nonce), bytes.fromhex(plain)
        aad, expected = bytes.fromhex(aad), bytes.fromhex(expected)
        assert ccm.encrypt(nonce, plain, aad) == expected, (len(nonce), len(plain))
        assert ccm.decrypt(nonce, expected, aad) == plain, (len(nonce), len(plain))


def test_block_boundary_cases_match_cryptography():
    for plen, alen, mic, expected in EDGE_CASES:
        plain = bytes((i * 7 + 3) & 0xFF for i in range(plen))
        aad = bytes((i * 11 + 5) & 0xFF for i in range(alen))
        expected = bytes.fromhex(expected)
        ccm = CCM(EDGE_KEY, mic)
        assert ccm.encrypt(EDGE_NONCE, plain, aad) == expected, (plen, alen, mic)
        assert ccm.decrypt(EDGE_NONCE, expected, aad) == plain, (plen, alen, mic)


def test_long_aad_uses_six_byte_length_encoding():
    # From 0xFF00 bytes on, the AAD length is encoded as FF FE + 4 bytes.
    # Key 00..0f, nonce 00..0c, AAD = bytes(range(256)) repeated, M = 8;
    # expected values from cryptography's AESCCM.
    ccm = CCM(bytes(range(16)), 8)
    nonce, plain = bytes(range(13)), b"hello, long AAD"
    aad = bytes(range(256)) * 257
    for alen, expected in (
        (0xFEFF, "7e51d8e43c25daee35f95487dc755a6a355c04b83642a9"),
        (0xFF00, "7e51d8e43c25daee35f95487dc755a28d228546241a83a"),
        (0x10000, "7e51d8e43c25daee35f95487dc755a35d7986d1e57e0a9"),
    ):
        part = memoryview(aad)[:alen]
        assert ccm.encrypt(nonce, plain, part) == bytes.fromhex(expected), alen
        assert ccm.decrypt(nonce, bytes.fromhex(expected), part) == plain, alen


def test_empty_plaintext_and_aad():
    # Only a MIC (cryptography: key 00..0f, 7 zero nonce bytes, M = 16).
    ccm = CCM(bytes(range(16)), 16)
    expected = bytes.fromhex("53e7bc05796ab3fad34296b9c2f2ea81")
    assert ccm.encrypt(bytes(7), b"") == expected
    assert ccm.decrypt(bytes(7), expected) == b""
    assert ccm.decrypt(bytes(7), expected, b"x") is None
    # An empty AAD of any buffer type is no AAD (flag bit 6 of B_0 clear).
    for empty in (bytearray(), memoryview(b"x")[:0], memoryview(bytearray(4))[4:]):
        assert ccm.encrypt(bytes(7), b"", empty) == expected
        assert ccm.decrypt(bytes(7), expected, empty) == b""


def test_round_trip_lengths():
    # Every plaintext length 0..40 with AAD 0..20 bytes, M = 4 and 8.
    random.seed(3610)
    key = bytes(random.getrandbits(8) for _ in range(16))
    for mic in (4, 8):
        ccm = CCM(key, mic)
        for plen in range(41):
            for alen in range(21):
                nonce = bytes(random.getrandbits(8) for _ in range(7 + (plen + alen) % 7))
                plain = bytes(random.getrandbits(8) for _ in range(plen))
                aad = bytes(random.getrandbits(8) for _ in range(alen))
                sealed = ccm.encrypt(nonce, plain, aad)
                assert len(sealed) == plen + mic
                assert ccm.decrypt(nonce, sealed, aad) == plain, (mic, plen, alen)


# --- Tampering -----------------------------------------------------------------


def flip(data, bit):
    out = bytearray(data)
    out[bit >> 3] ^= 1 << (bit & 7)
    return bytes(out)


def test_every_bit_flip_is_rejected():
    # RFC vector #1: 23 ciphertext bytes + 8 MIC bytes, 13-byte nonce, 8-byte AAD.
    _number, key, nonce, packet, header, mic, expected = rfc_vectors()[0]
    ccm = CCM(key, mic)
    aad, data = expected[:header], expected[header:]
    assert ccm.decrypt(nonce, data, aad) == packet[header:]
    for bit in range(len(data) * 8):
        assert ccm.decrypt(nonce, flip(data, bit), aad) is None, ("data", bit)
    for bit in range(len(nonce) * 8):
        assert ccm.decrypt(flip(nonce, bit), data, aad) is None, ("nonce", bit)
    for bit in range(len(aad) * 8):
        assert ccm.decrypt(nonce, data, flip(aad, bit)) is None, ("aad", bit)
    # The object is not left in a bad state by the failures.
    assert ccm.decrypt(nonce, data, aad) == packet[header:]


def test_other_tampering_is_rejected():
    _number, key, nonce, _packet, header, mic, expected = rfc_vectors()[0]
    aad, data = expected[:header], expected[header:]
    ccm = CCM(key, mic)
    assert CCM(KEY_13_24, mic).decrypt(nonce, data, aad) is None  # wrong key
    assert CCM(key, 10).decrypt(nonce, data, aad) is None  # other MIC length
    assert ccm.decrypt(nonce, data[:-1], aad) is None  # truncated
    assert ccm.decrypt(nonce, data + b"\x00", aad) is None  # extended
    assert ccm.decrypt(nonce, data, b"") is None  # AAD dropped
    assert ccm.decrypt(nonce, data[1:], aad) is None  # shifted


def test_garbage_of_valid_length_returns_none():
    random.seed(1)
    ccm = CCM(KEY_1_12, 8)
    for n in range(8, 60):
        data = bytes(random.getrandbits(8) for _ in range(n))
        assert ccm.decrypt(bytes(13), data) is None, n
        assert ccm.decrypt(bytes(7), data, data) is None, n
    assert ccm.decrypt(bytes(13), bytes(8)) is None  # MIC only, all zero


# --- Arguments -------------------------------------------------------------------


def raises_value_error(fn, *args):
    try:
        fn(*args)
    except ValueError:
        return True
    return False


def test_bad_key_and_mic_length_raise():
    for key in (b"", bytes(15), bytes(17), bytes(32)):
        assert raises_value_error(CCM, key), len(key)
    for mic in (0, 2, 3, 5, 7, 9, 18, 32):
        assert raises_value_error(CCM, bytes(16), mic), mic
    for mic in (4, 6, 8, 10, 12, 14, 16):
        assert len(CCM(bytes(16), mic).encrypt(bytes(13), b"")) == mic


def test_bad_nonce_length_raises():
    ccm = CCM(KEY_1_12, 8)
    for n in (0, 6, 14, 16):
        assert raises_value_error(ccm.encrypt, bytes(n), b"abc"), n
        assert raises_value_error(ccm.decrypt, bytes(n), bytes(12)), n
    for n in range(7, 14):
        sealed = ccm.encrypt(bytes(n), b"abc")
        assert ccm.decrypt(bytes(n), sealed) == b"abc", n


def test_data_shorter_than_mic_raises():
    ccm = CCM(KEY_1_12, 8)
    for n in range(8):
        assert raises_value_error(ccm.decrypt, bytes(13), bytes(n)), n
    ccm4 = CCM(KEY_1_12, 4)
    assert raises_value_error(ccm4.decrypt, bytes(13), bytes(3))
    assert ccm4.decrypt(bytes(13), bytes(4)) is None


def test_buffer_types_and_result_type():
    # The firmware passes bytearrays (its reused nonce/plaintext buffers) and
    # memoryviews; results are immutable bytes, not views of the work buffers.
    number, key, nonce, packet, header, mic, expected = rfc_vectors()[12]
    ccm = CCM(bytearray(key), mic)
    sealed = ccm.encrypt(bytearray(nonce), memoryview(packet)[header:], bytearray(packet[:header]))
    assert type(sealed) is bytes
    assert packet[:header] + sealed == expected, number
    opened = ccm.decrypt(memoryview(nonce), bytearray(sealed), memoryview(packet)[:header])
    assert type(opened) is bytes
    assert opened == packet[header:]


def test_interleaved_calls_do_not_interfere():
    ccm = CCM(KEY_1_12, 8)
    a = ccm.encrypt(bytes(13), b"first message", b"rid00001")
    b = ccm.encrypt(bytes(range(13)), b"second", b"")
    assert ccm.decrypt(bytes(13), a, b"rid00001") == b"first message"
    assert ccm.decrypt(bytes(13), b, b"") is None
    assert ccm.encrypt(bytes(13), b"first message", b"rid00001") == a
    assert ccm.encrypt(bytes(range(13)), b"second", b"") == b
