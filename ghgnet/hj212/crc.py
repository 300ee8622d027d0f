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


def crc16(data: bytes) -> int:
    """The Appendix A CRC of `data` (the data segment's bytes), 0..0xFFFF.

    Per byte the register becomes (crc >> 8) ^ byte, a value below 256, so the eight steps only
    depend on it: a 256-entry table gives the same result as the bit loop.
    """
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
