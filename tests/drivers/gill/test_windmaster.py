"""Gill WindMaster UVW stream: the exact lines it sends and what the driver makes of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drivers.gill.windmaster import MalformedLine, WindMaster, WindMasterRecord, checksum, format_line, parse_line
from drivers.testing import expected_protocol
from drivers.transport import TransportTimeout

CONFIG = {"id": "sonic", "url": "loop://", "output_rate_hz": 20}
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def line(body: bytes) -> bytes:
    return b"\x02" + body + b"\x03" + f"{checksum(body):02X}".encode() + b"\r\n"


GOOD_1 = line(b"Q,+001.234,-000.567,+000.089,M,+343.21,+020.15,00,")
GOOD_2 = line(b"Q,+001.301,-000.512,-000.041,M,+343.25,+020.21,00,")
FAILED = line(b"Q,+999.999,+999.999,+999.999,M,+000.00,-273.15,0B,")


def test_records_are_read_and_spaced_at_the_output_rate():
    with expected_protocol(WindMaster, CONFIG, [(None, GOOD_1 + GOOD_2 + FAILED)]) as drv:
        drv.now = lambda: NOW
        result = drv.poll()
    assert not result.problems
    first, second, bad = result.readings
    assert first.values == {"u": 1.234, "v": -0.567, "w": 0.089, "speed_of_sound": 343.21, "sonic_temp": 20.15}
    assert first.status_ok and second.status_ok and bad.time == NOW
    assert NOW - first.time == timedelta(seconds=0.1)
    assert not bad.status_ok and bad.status == 0x0B and bad.status_flags == ("status_0B",)


def test_a_bad_checksum_or_a_cut_line_is_named_and_the_rest_kept():
    corrupt = GOOD_1.replace(b"+001.234", b"+001.284")
    with expected_protocol(WindMaster, CONFIG, [(None, corrupt + GOOD_2 + GOOD_1[:20])]) as drv:
        drv.now = lambda: NOW
        result = drv.poll()
    # the unfinished last line waits for the rest: it is neither a record nor a problem yet
    assert len(result.readings) == 1 and result.readings[0].values["w"] == -0.041
    assert len(result.problems) == 1 and "checksum 1F, the bytes give 14" in result.problems[0]


def test_silence_becomes_a_timeout_after_silent_s():
    with expected_protocol(WindMaster, {**CONFIG, "silent_s": 5}, []) as drv:
        t = [NOW]
        drv.now = lambda: t[0]
        assert drv.poll().readings == []
        t[0] = NOW + timedelta(seconds=6)
        with pytest.raises(TransportTimeout, match="nothing from"):
            drv.poll()


def test_format_and_parse_round_trip():
    rec = WindMasterRecord("Q", -12.345, 0.5, -0.001, 345.67, -5.25, 0)
    assert parse_line(format_line(rec)) == rec
    with pytest.raises(MalformedLine, match="units 'N'"):
        parse_line(line(b"Q,+001.234,-000.567,+000.089,N,+343.21,+020.15,00,"))
    with pytest.raises(MalformedLine, match="no STX"):
        parse_line(b"Q,+001.234\r\n")
