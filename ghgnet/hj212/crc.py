"""The HJ 212 frame check: the standard's Appendix A CRC, which is not CRC-16/MODBUS.

HJ 212-2017 Appendix A: crc = 0xFFFF; for each byte of the data segment crc = (crc >> 8) ^ byte, then
eight times: carry = crc & 1, crc >>= 1, if carry crc ^= 0xA001. It is printed as four hex digits,
high byte first. (MODBUS xors the byte into the low byte without the shift, so the two disagree.)
Checked against the standard's own example in DOMAIN.md (`QN=20160801085857223;...;CP=&&RtdInterval=30&&`
-> 1C80) and against open implementations read for the purpose: hupengwu/fox-edge-server-protocol
(hj212_2017 Crc16Util.java), 1249993110/IceCoffee.HJ212 (Utils.cs), srdgame/lua-HJ212 (packet.lua
formats the value `%04X`).
"""

from __future__ import annotations

import struct


def _table() -> tuple[int, ...]:
    """crc16 of the register's low byte alone: the eight shift-and-xor steps precomputed per value."""
    out = []
    for low in range(256):
        crc = low
        for _ in range(8):
            carry = crc & 1
            crc >>= 1
            if carry:
                crc ^= 0xA001
        out.append(crc)
    return tuple(out)


_TABLE = _table()
_HIGH = tuple(t >> 8 for t in _TABLE)
_PAIRS = tuple(_HIGH[_HIGH[i & 0xFF] ^ (i >> 8)] for i in range(65536))
"""Two steps at once for the 8-bit state below: _PAIRS[(y << 8) | x] = _HIGH[_HIGH[x] ^ y]."""


def crc16(data: bytes) -> int:
    """The Appendix A CRC of `data` (the data segment's bytes), 0..0xFFFF.

    Per byte the register becomes (crc >> 8) ^ byte, a value below 256, so the eight steps only
    depend on it: a 256-entry table gives the same result as the bit loop. Only the register's high
    byte, s, survives into the next byte's step: s = HIGH[s ^ byte], from s = 0xFF; the CRC is then
    TABLE[s ^ last byte]. Two bytes b1 b2 at a time: s = PAIRS[(b2 << 8 | b1) ^ s], half the loop
    (the bytes read as little-endian 16-bit words). Tested against `crc16_bitwise`.
    """
    n = len(data)
    if n == 0:
        return 0xFFFF
    s = 0xFF
    high, pairs = _HIGH, _PAIRS
    start = 0
    if (n - 1) & 1:  # an odd count before the last byte: one single step first
        s = high[s ^ data[0]]
        start = 1
    for w in _words(data, start, n - 1):
        s = pairs[w ^ s]
    return _TABLE[s ^ data[n - 1]]


def _words(data: bytes, start: int, end: int) -> tuple[int, ...]:
    return struct.unpack_from(f"<{(end - start) >> 1}H", data, start)


def crc16_table(data: bytes) -> int:
    """The byte-at-a-time table form (a second reference for `crc16`)."""
    crc = 0xFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc >> 8) ^ byte]
    return crc


def crc16_bitwise(data: bytes) -> int:
    """The Appendix A loop exactly as the standard writes it (the reference the table is tested against)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ byte
        for _ in range(8):
            carry = crc & 1
            crc >>= 1
            if carry:
                crc ^= 0xA001
    return crc
