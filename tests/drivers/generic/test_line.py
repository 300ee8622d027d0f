"""Expected-communication tests for generic.line (GenericLine): exact bytes out, record lines in,
for both example definitions in configs/analyzers/ (illustrative formats) and for tables written
inline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.generic.line import GenericLine, GenericLineConfig, unescape
from drivers.testing import expected_protocol
from drivers.transport import TransportTimeout
from ghgnet.clock import ManualClock

DEFS = Path(__file__).resolve().parents[3] / "configs" / "analyzers"
CEAS = {"id": "ceas-1", "driver": "generic.line", "url": "socket://127.0.0.1:4001",
        "definition": str(DEFS / "ceas-ghg-poll.toml")}
NDIR = {"id": "ndir-1", "driver": "generic.line", "url": "/dev/ttyUSB0",
        "definition": str(DEFS / "ndir-co2-stream.toml")}
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def poll_with_clock(drv: GenericLine):
    drv.now = ManualClock(NOW).now
    return drv.poll()


def test_poll_mode_sends_the_command_and_converts_each_field_to_ghgnet_units():
    reply = b"DATA 428.115 429.901 2.0611 2.0703 0.4125 P=18.665 T=45.002 ST=OK\r\n"
    with expected_protocol(GenericLine, CEAS, [(b"READ\r", reply)]) as drv:
        result = poll_with_clock(drv)
    assert result.problems == []
    (r,) = result.readings
    assert r.time == NOW  # no time field: stamped with the station's clock when read
    assert r.values["co2"] == 428.115 and r.values["co2_dry"] == 429.901
    assert r.values["ch4"] == pytest.approx(2061.1) and r.values["ch4_dry"] == pytest.approx(2070.3)
    assert r.values["h2o"] == 0.4125
    assert r.values["cavity_pressure"] == pytest.approx(18.665 * 7.50061683, rel=1e-6)  # kPa -> Torr
    assert r.status_ok and r.status_flags == ()


def test_poll_mode_status_texts_become_flags_and_an_unknown_one_is_named():
    line = "DATA 428.1 429.9 2.06 2.07 0.41 P=18.6 T=45.0 ST={}\r\n"
    pairs = [(b"READ\r", line.format("WARM").encode()), (b"READ\r", line.format("ZZZ").encode())]
    with expected_protocol(GenericLine, CEAS, pairs) as drv:
        warm, odd = poll_with_clock(drv).readings[0], drv.poll().readings[0]
    assert not warm.status_ok and warm.status_flags == ("warming_up",)
    assert not odd.status_ok and odd.status_flags == ("status:ZZZ",)


def test_a_reply_that_does_not_match_is_named_and_gives_no_reading():
    with expected_protocol(GenericLine, CEAS, [(b"READ\r", b"ERR 12\r\n")]) as drv:
        result = poll_with_clock(drv)
    assert result.readings == [] and "does not match the regex" in result.problems[0]


def test_stream_mode_reads_every_waiting_line_with_its_own_time_and_keeps_records_around_noise():
    lines = (b"$2026-03-01 16:00:02,421.532,0.412,50.01,101.33,0000\r\n"
             b"\xfe#@!noise\r\n"
             b"$2026-03-01 16:00:04,421.611,abc,50.01,101.33,0000\r\n"
             b"$2026-03-01 16:00:06,421.498,0.410,50.02,101.31,0009\r\n")
    with expected_protocol(GenericLine, NDIR, [(None, lines)]) as drv:
        result = drv.poll()
    first, last = result.readings
    assert first.time == datetime(2026, 3, 1, 8, 0, 2, tzinfo=UTC)  # Asia/Shanghai -> UTC
    assert first.values == {"co2_dry": 421.532, "h2o": pytest.approx(0.0412), "cell_temp": 50.01,
                            "cell_pressure": pytest.approx(1013.3)}
    assert first.status == 0 and first.status_ok
    assert last.status == 9 and last.status_flags == ("source_low", "warming_up") and not last.status_ok
    assert len(result.problems) == 2
    assert "no start character" in result.problems[0] and "h2o: not a number: 'abc'" in result.problems[1]


def test_stream_mode_with_nothing_sent_is_a_timeout():
    with expected_protocol(GenericLine, NDIR, []) as drv, pytest.raises(TransportTimeout, match="sent nothing"):
        drv.poll()


def test_a_delimited_table_written_inline_with_scale_offset_and_epoch_time():
    cfg = {"id": "x", "driver": "generic.line", "url": "loop://", "mode": "poll", "poll_command": r"\x05",
           "terminator": "\n", "delimiter": " ", "fields": ["t", "", "c"],
           "timestamp": {"field": "t", "format": "epoch"},
           "quantities": {"c": {"quantity": "co2", "unit": "ppm", "scale": 0.1, "offset": 1.0}}}
    with expected_protocol(GenericLine, cfg, [(b"\x05", b"1772352000  x   4200\n")]) as drv:
        (r,) = drv.poll().readings
    assert r.time == datetime(2026, 3, 1, 8, 0, tzinfo=UTC) and r.values == {"co2": 421.0}


def test_the_table_overrides_the_definition():
    cfg = GenericLineConfig.model_validate({**NDIR, "timestamp": {"field": "time", "format": "%Y-%m-%d %H:%M:%S"}})
    assert cfg.timestamp is not None and cfg.timestamp.zone == "UTC" and cfg.mode == "stream"


@pytest.mark.parametrize(("change", "message"), [
    ({"regex": "(?P<co2>.*)"}, "either `delimiter`"),
    ({"quantities": {"nope": {"quantity": "co2", "unit": "ppm"}}}, "not among the record's fields"),
    ({"quantities": {"co2": {"quantity": "co2_dry", "unit": "kPa"}}}, "cannot convert 'kPa' to 'ppm'"),
    ({"mode": "poll"}, "poll mode needs `poll_command`"),
    ({"definition": "/nonexistent.toml"}, "definition /nonexistent.toml"),
])
def test_a_bad_description_is_refused_naming_what_is_wrong(change, message):
    with pytest.raises(ValidationError, match=message):
        GenericLineConfig.model_validate({**NDIR, **change})


def test_escapes_in_commands():
    assert unescape(r"READ\r\n") == b"READ\r\n" and unescape("\\x02GO\\x03") == b"\x02GO\x03"
    assert unescape("READ\r") == b"READ\r"


def test_probe_shows_the_description_and_one_polled_record():
    reply = b"DATA 428.115 429.901 2.0611 2.0703 0.4125 P=18.665 T=45.002 ST=PRES\r\n"
    with expected_protocol(GenericLine, CEAS, [(b"READ\r", reply)]) as drv:
        info = drv.identify()
    assert info["mode"] == "poll" and info["quantities"]["p"] == "cavity_pressure"
    assert info["latest"]["co2_dry"] == 429.901 and info["latest"]["status_flags"] == ["pressure_unlocked"]
