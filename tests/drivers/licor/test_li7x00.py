"""LI-7500 / LI-7200 RS-232 data stream: the exact lines they send and what the drivers make of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drivers.licor.li7x00 import LI7200, LI7500, MalformedLine, format_record, parse_line
from drivers.testing import expected_protocol
from drivers.transport import TransportTimeout

CONFIG = {"id": "irga", "url": "loop://", "output_rate_hz": 10}
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)

GOOD_1 = b"(Data (Ndx 1545)(DiagVal 246)(CO2D 1.6532117e1)(H2OD 4.1221000e2)(Temp 2.4227569e1)(Pres 9.8640356e1))\n"
GOOD_2 = b"(Data (Ndx 1546)(DiagVal 246)(CO2D 1.6541000e1)(H2OD 4.1200000e2)(Temp 2.4227569e1)(Pres 9.8640356e1))\r\n"
NO_PLL = b"(Data (Ndx 1547)(DiagVal 214)(CO2D -9.9990000e2)(H2OD -9.9990000e2)(Temp 2.4227569e1)(Pres 9.8640356e1))\n"


def test_records_are_read_in_units_and_spaced_at_the_output_rate():
    with expected_protocol(LI7500, CONFIG, [(None, GOOD_1 + GOOD_2 + NO_PLL)]) as drv:
        drv.now = lambda: NOW
        result = drv.poll()
    assert not result.problems
    first, second, bad = result.readings
    assert first.values == pytest.approx({"co2_density": 16.532117, "h2o_density": 412.21, "temperature": 24.227569,
                                          "pressure": 986.40356, "agc_pct": 37.5})
    assert first.status == 246 and first.status_ok and second.status_ok
    assert NOW - first.time == timedelta(seconds=0.2) and bad.time == NOW
    assert not bad.status_ok and bad.status_flags == ("pll",)


def test_lost_records_an_error_record_and_a_cut_line_are_named_and_the_rest_kept():
    gap = GOOD_2.replace(b"Ndx 1546", b"Ndx 1550")
    error = b"(Error (Received FALSE)(Unrecognized (Outputs(BW 5))))\n"
    with expected_protocol(LI7500, CONFIG, [(None, GOOD_1 + b"(Ack (Received TRUE))\n" + gap + error + GOOD_1[:30])]) as drv:
        drv.now = lambda: NOW
        result = drv.poll()
    # the unfinished last line waits for the rest: it is neither a record nor a problem yet
    assert [r.values["co2_density"] for r in result.readings] == [16.532117, 16.541]
    assert result.problems[0] == "4 records lost (Ndx 1545 -> 1550)"
    assert "the analyzer reports an error" in result.problems[1] and len(result.problems) == 2


def test_the_li7200_reads_mole_fractions_and_its_cell_diagnostics():
    healthy = 0x1FF6  # bits 1-12: AGC 6 (37.5 %) and every part OK
    line = format_record({"Ndx": 7, "DiagVal": healthy & ~(1 << 8), "CO2MF": 410.5, "H2OMF": 12.5,
                          "Temp": 20.0, "Pres": 99.0})
    with expected_protocol(LI7200, {**CONFIG, "driver": "licor.li7200"}, [(None, line)]) as drv:
        drv.now = lambda: NOW
        (rec,) = drv.poll().readings
    assert rec.values["co2"] == pytest.approx(410.5) and rec.values["h2o"] == pytest.approx(1.25)
    assert not rec.status_ok and rec.status_flags == ("pressure",)


def test_silence_becomes_a_timeout_after_silent_s():
    with expected_protocol(LI7500, {**CONFIG, "silent_s": 5}, []) as drv:
        t = [NOW]
        drv.now = lambda: t[0]
        assert drv.poll().readings == []
        t[0] = NOW + timedelta(seconds=6)
        with pytest.raises(TransportTimeout, match="nothing from"):
            drv.poll()


def test_format_and_parse_round_trip_and_bad_lines():
    fields = {"Ndx": 12, "DiagVal": 246, "CO2D": 16.25, "H2OD": 410.0, "Temp": -5.5, "Pres": 101.325}
    (rec,) = parse_line(format_record(fields))
    assert rec.fields == pytest.approx(fields) and rec.index == 12 and rec.diag == 246
    with pytest.raises(MalformedLine, match="no \\(Data"):
        parse_line(b"15.1234\t354.123\t101.3\t249\n")
    with pytest.raises(MalformedLine, match="is not a number"):
        parse_line(b"(Data (Ndx 1)(CO2D abc))\n")
