"""HJ 212 (China's data-transmission standard for online monitoring systems): the codec.

Pure functions and dataclasses, no I/O, shared by the station uplink and central's listener:
- `crc16(data)`: the Appendix A CRC;
- `encode_frame(segment)`, `decode_frame(raw)`, `FrameReader` (a TCP stream splitter), `FrameError`;
- `Packet`, `parse_segment(text)`, `Packet.segment()`, `split_packet`, `merge_parts`, `make_flag`,
  the replies `reply_9011/9012/9013/9014`, `PacketError`;
- `codes`: CN numbers, data flags, factor codes and units, ppm <-> mg/m3, ICOS <-> HJ 212 flags.
"""

from . import codes
from .crc import crc16
from .frame import MAX_SEGMENT, FrameError, FrameReader, decode_frame, encode_frame
from .packet import (
    DEFAULT_EDITION,
    EDITION_VERSION,
    FLAG_ACK,
    FLAG_SPLIT,
    Packet,
    PacketError,
    format_data_time,
    make_flag,
    make_qn,
    merge_parts,
    parse_data_time,
    parse_segment,
    reply_9011,
    reply_9012,
    reply_9013,
    reply_9014,
    segment_size,
    split_packet,
)


def encode_packet(packet: Packet) -> bytes:
    """The frame of `packet` (FrameError oversize when it needs `split_packet` first)."""
    return encode_frame(packet.segment())


def decode_packet(raw: bytes) -> Packet:
    """The packet of one complete frame: FrameError for the framing, PacketError for the segment."""
    return parse_segment(decode_frame(raw))


__all__ = [
    "DEFAULT_EDITION", "EDITION_VERSION", "FLAG_ACK", "FLAG_SPLIT", "MAX_SEGMENT", "FrameError", "FrameReader",
    "Packet", "PacketError", "codes", "crc16", "decode_frame", "decode_packet", "encode_frame", "encode_packet",
    "format_data_time", "make_flag", "make_qn", "merge_parts", "parse_data_time", "parse_segment", "reply_9011",
    "reply_9012", "reply_9013", "reply_9014", "segment_size", "split_packet",
]
