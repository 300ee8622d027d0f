"""HJ 212 framing and CRC: the standard's example, open implementations' packets as vectors, every
FrameError reason, the stream splitter, and a fuzz of decode_frame and FrameReader."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghgnet.hj212 import FrameError, FrameReader, crc16, decode_frame, encode_frame
from ghgnet.hj212 import frame as fr
from ghgnet.hj212.crc import crc16_bitwise

# HJ 212-2017's own example (Appendix A / section 6): 101 characters, CRC 1C80.
STANDARD_SEGMENT = ("QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
                    "CP=&&RtdInterval=30&&")
STANDARD_FRAME = b"##0101" + STANDARD_SEGMENT.encode() + b"1C80\r\n"
# Packets from the field quoted in open implementations, with the CRC their senders computed:
# a 2017 real-time packet (a Java parser's main()), and an older logger's packet whose CRC a validator
# test (HJT212FormatValidatorTest) gives in lower case.
FIELD_VECTORS = [
    ("QN=20190814170100001;ST=22;CN=2011;PW=123456;MN=2019031801100018;Flag=5;CP=&&DataTime=20190814170100;"
     "a01007-Rtd=1.7,a01007-Flag=N;a01008-Rtd=199.1,a01008-Flag=N;a01001-Rtd=22.9,a01001-Flag=N;"
     "a01002-Rtd=85.8,a01002-Flag=N;a01006-Rtd=98.7,a01006-Flag=N;R01-Rtd=0.0,R01-Flag=N&&", 275, "9301"),
    ("ST=32;CN=2011;PW=123456;MN=0873HHMZWSLH02;CP=&&DataTime=20160103133030;060-Rtd=3.0943,060-Flag=N;"
     "011-Rtd=18.0412,011-Flag=N;001-Rtd=8.2137,001-Flag=N;B01-Rtd=10.9890,B01-Flag=N&&", 178, "a9c1"),
]


def test_crc_of_the_standards_example_is_1c80():
    assert len(STANDARD_SEGMENT) == 101
    assert crc16(STANDARD_SEGMENT.encode()) == 0x1C80


@pytest.mark.parametrize("segment,length,crc", FIELD_VECTORS)
def test_crc_of_field_packets_matches_their_senders(segment, length, crc):
    assert len(segment) == length
    assert crc16(segment.encode()) == int(crc, 16)


def test_crc_is_not_modbus_crc():
    # CRC-16/MODBUS of "123456789" is 0x4B37; the Appendix A loop gives another value.
    assert crc16(b"123456789") != 0x4B37


def test_table_crc_equals_the_standards_bit_loop():
    rng = random.Random(212)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        assert crc16(data) == crc16_bitwise(data)


def test_encode_frame_gives_the_standards_frame():
    assert encode_frame(STANDARD_SEGMENT) == STANDARD_FRAME


@pytest.mark.parametrize("segment,length,crc", FIELD_VECTORS)
def test_decode_accepts_upper_and_lower_case_crc(segment, length, crc):
    for text in (crc.upper(), crc.lower()):
        raw = b"##%04d%s%s\r\n" % (length, segment.encode(), text.encode())
        assert decode_frame(raw) == segment


def test_round_trip_of_gbk_text_counts_bytes():
    segment = "ST=32;CN=2011;PW=123456;MN=X1;CP=&&i11001-Info=//站房温度正常//&&"
    raw = encode_frame(segment)
    assert int(raw[2:6]) == len(segment.encode("gbk"))
    assert decode_frame(raw) == segment


def _reason(raw: bytes) -> str:
    with pytest.raises(FrameError) as e:
        decode_frame(raw)
    return e.value.reason


def test_every_frame_error_reason():
    good = STANDARD_FRAME
    assert _reason(b"#!" + good[2:]) == fr.BAD_START
    assert _reason(b"##01x1" + good[6:]) == fr.BAD_LENGTH
    assert _reason(b"##0102" + good[6:]) == fr.LENGTH_MISMATCH
    assert _reason(good.replace(b"1C80", b"1C81")) == fr.BAD_CRC
    assert _reason(good.replace(b"1C80", b"1CG0")) == fr.BAD_CRC
    assert _reason(good[:-2]) == fr.MISSING_CRLF
    assert _reason(good[:-1]) == fr.MISSING_CRLF
    assert _reason(b"##1025" + b"A" * 1025 + b"0000\r\n") == fr.OVERSIZE
    bad_gbk = b"\x81\x20"  # a GBK lead byte followed by a byte that cannot trail it
    assert _reason(b"##0002" + bad_gbk + b"%04X\r\n" % crc16(bad_gbk)) == fr.BAD_TEXT


def test_encode_refuses_oversize_and_unencodable_segments():
    with pytest.raises(FrameError) as e:
        encode_frame("A" * 1025)
    assert e.value.reason == fr.OVERSIZE
    assert encode_frame("A" * 1024).startswith(b"##1024")
    with pytest.raises(FrameError) as e:
        encode_frame("CP=&&x=\U0001F600&&")
    assert e.value.reason == fr.BAD_TEXT
    with pytest.raises(FrameError):
        encode_frame("ST=32\r\n")


def test_frame_error_is_a_value_error_naming_its_reason():
    err = FrameError(fr.BAD_CRC, "x")
    assert isinstance(err, ValueError) and str(err).startswith("bad_crc")


# --- FrameReader ---------------------------------------------------------------------------------

def _frames(reader: FrameReader, data: bytes, chunk: int) -> list:
    out = []
    for i in range(0, len(data), chunk):
        out += reader.feed(data[i:i + chunk])
    return out + reader.close()


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 4096])
def test_reader_splits_frames_fed_in_any_chunking(chunk):
    segs = [STANDARD_SEGMENT, FIELD_VECTORS[0][0], "ST=32;CN=2011;PW=1;MN=A;CP=&&&&"]
    data = b"".join(encode_frame(s) for s in segs) * 3
    assert _frames(FrameReader(), data, chunk) == segs * 3


def _labels(items: list) -> list[str]:
    return [i.reason if isinstance(i, FrameError) else "ok" for i in items]


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_reader_reports_each_bad_kind_and_recovers(chunk):
    good = STANDARD_FRAME
    data = b"".join([
        b"garbage\x00\xff", good,                             # bad start, then a frame
        good.replace(b"1C80", b"0000"),                         # bad CRC
        b"##01x1" + good[6:],                                   # bad length, its body skipped
        good,
        b"##0090" + good[6:],                                   # declares 90: CR LF comes late
        b"##0110" + good[6:],                                   # declares 110: CR LF comes early
        good[:-2],                                              # no CR LF, the next frame follows
        good[:50],                                              # cut off by the next frame
        good,
        b"##9999" + b"x" * 30,                                  # oversize length field
        good,
    ])
    assert _labels(_frames(FrameReader(), data, chunk)) == [
        "bad_start", "ok", "bad_crc", "bad_length", "ok", "length_mismatch", "length_mismatch",
        "missing_crlf", "truncated", "ok", "oversize", "ok"]


def test_reader_reports_a_truncated_frame_at_end_of_stream():
    reader = FrameReader()
    assert reader.feed(STANDARD_FRAME[:40]) == []
    assert _labels(reader.close()) == ["truncated"]


def test_reader_keeps_a_half_header_across_chunks():
    reader = FrameReader()
    assert reader.feed(b"noise#") and reader.buffered == 1
    assert reader.feed(STANDARD_FRAME[1:]) == [STANDARD_SEGMENT]


def test_reader_buffer_stays_bounded_under_garbage():
    reader = FrameReader()
    rng = random.Random(1)
    for _ in range(200):
        reader.feed(bytes(rng.randrange(256) for _ in range(1000)).replace(b"##", b"#!"))
        assert reader.buffered <= 1
    for _ in range(50):  # a header that never completes
        reader.feed(b"##1024" + b"A" * 2000)
        assert reader.buffered <= fr.MAX_SEGMENT + fr.FRAME_OVERHEAD


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=1200))
def test_decode_frame_raises_only_frame_error(data):
    try:
        decode_frame(data)
    except FrameError as e:
        assert e.reason in fr.REASONS


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([STANDARD_FRAME, STANDARD_FRAME[:30], b"##", b"#", b"\r\n", b"##0101",
                                 b"x", b"##0005ABCDE0000\r\n", FIELD_VECTORS[0][0].encode()]), max_size=30),
       st.integers(1, 50))
def test_reader_never_raises_and_finds_every_intact_frame(parts, chunk):
    data = b"".join(parts)
    out = _frames(FrameReader(), data, chunk)
    assert all(isinstance(o, str | FrameError) for o in out)
    # Every intact standard frame that is not glued to a preceding unfinished header is found.
    assert sum(1 for o in out if o == STANDARD_SEGMENT) <= data.count(STANDARD_FRAME)


def test_seeded_mutation_fuzz_of_valid_frames():
    rng = random.Random(2017)
    base = STANDARD_FRAME
    for _ in range(3000):
        raw = bytearray(base)
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(3)
            pos = rng.randrange(len(raw))
            if op == 0:
                raw[pos] = rng.randrange(256)
            elif op == 1:
                del raw[pos]
            else:
                raw.insert(pos, rng.randrange(256))
        try:
            seg = decode_frame(bytes(raw))
        except FrameError as e:
            assert e.reason in fr.REASONS
        else:
            assert crc16(seg.encode("gbk")) == int(bytes(raw[-6:-2]), 16)


def test_whole_frame_fast_path_agrees_with_the_stepwise_reader():
    """FrameReader.feed's shortcut for a chunk that is one frame decides as `_step` does, on frames
    mutated into every kind of error."""
    rng = random.Random(17)
    good = encode_frame("QN=20160801085857223;ST=32;CN=2051;PW=123456;MN=AB12;Flag=5;CP=&&DataTime=20160801084000&&")
    alphabet = b"#\r\n0123456789ABCDEFaf;=&"

    def described(items):
        return [(type(i).__name__, i.reason if isinstance(i, FrameError) else i) for i in items]

    for _ in range(3000):
        chunk = bytearray(good)
        for _ in range(rng.randint(0, 2)):
            i = rng.randrange(len(chunk))
            chunk[i:i + 1] = bytes([rng.choice(alphabet)]) if rng.random() < 0.7 else b""
        fast = FrameReader().feed(bytes(chunk))
        slow_reader = FrameReader()
        slow_reader._buf += chunk
        slow: list = []
        while slow_reader._step(slow):
            pass
        assert described(fast) == described(slow), bytes(chunk)
