"""Expected-communication tests for the LI-COR LI-830/LI-850 driver: exact bytes out, replies in.

Messages follow LI-COR's configuration grammar (LI-850 manual, "Element descriptions"): one XML
element per line under the root <li850> or <li830>, commands ending in LF, `<ack>true</ack>`
acknowledging a command, DATA children CO2 (ppm), H2O (mmol/mol), CELLTEMP (degC), CELLPRES (kPa),
IVOLT (V).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from drivers.base import DriverError
from drivers.licor.li8x0 import LI830, LI850, Li8x0Error
from drivers.testing import expected_protocol
from drivers.transport import TransportTimeout

POLLED = {"id": "li850-1", "driver": "licor.li850", "url": "/dev/ttyUSB0"}
STREAM = {**POLLED, "mode": "stream", "outrate_s": 1}
LI830_CFG = {"id": "li830-1", "driver": "licor.li830", "url": "/dev/ttyUSB1"}

OUTRATE_0 = (b"<li850><cfg><outrate>0</outrate></cfg></li850>\n", b"<li850><ack>true</ack></li850>\n")
OUTRATE_1 = (b"<li850><cfg><outrate>1</outrate></cfg></li850>\n", b"<li850><ack>true</ack></li850>\n")
ASK = b"<li850><data>?</data></li850>\n"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def record(co2: str = "4.2013000e2", h2o: str = "1.2000000e1", temp: str = "5.1250000e1",
           pres: str = "9.7100000e1", volts: str = "2.4000000e1", extra: str = "", root: str = "li850") -> bytes:
    water = f"<h2o>{h2o}</h2o><h2odewpoint>9.6e0</h2odewpoint>" if root == "li850" else ""
    return (f"<{root}><data><celltemp>{temp}</celltemp><cellpres>{pres}</cellpres><co2>{co2}</co2>"
            f"<co2abs>7.0e-2</co2abs>{water}<ivolt>{volts}</ivolt><raw><co2>3816</co2><co2ref>4012</co2ref></raw>"
            f"</data>{extra}</{root}>\r\n").encode()


def clocked(drv):
    drv.now = lambda: T0
    return drv


def test_open_sets_polled_output_and_a_poll_asks_for_one_record():
    with expected_protocol(LI850, POLLED, [OUTRATE_0, (ASK, record())]) as drv:
        result = clocked(drv).poll()
    (r,) = result.readings
    assert r.time == T0 and r.device == "li850-1"
    assert r.values == {"co2": 420.13, "h2o": 1.2, "cell_temp": 51.25, "cell_pressure": 971.0, "input_voltage": 24.0}  # kPa on the wire, hPa here
    assert r.status_ok and r.status_flags == () and result.problems == []


def test_open_sets_the_stream_rate_and_a_poll_reads_every_line_that_came():
    lines = record("4.2e2") + record("4.21e2") + record("4.22e2") + b"<li850><data><co2>4.2"
    with expected_protocol(LI850, STREAM, [OUTRATE_1, (None, lines)]) as drv:
        result = clocked(drv).poll()
    assert [r.values["co2"] for r in result.readings] == [420.0, 421.0, 422.0]
    # stamped back from the read at the output rate
    assert [r.time for r in result.readings] == [T0 - timedelta(seconds=2), T0 - timedelta(seconds=1), T0]
    assert result.problems == []
    assert drv._partial == b"<li850><data><co2>4.2"  # the cut line waits for its end


def test_a_cut_streamed_line_is_completed_by_the_next_poll():
    rest = b"1e2</co2></data></li850>\n"
    with expected_protocol(LI850, STREAM, [OUTRATE_1, (None, b"<li850><data><co2>4.2"), (None, None)]) as drv:
        with pytest.raises(TransportTimeout):
            clocked(drv).poll()  # nothing complete yet: a silent stream is a timeout
        drv.transport._readable += rest
        result = drv.poll()
    assert [r.values["co2"] for r in result.readings] == [421.0]


def test_a_silent_stream_raises_timeout():
    with expected_protocol(LI850, STREAM, [OUTRATE_1]) as drv:
        with pytest.raises(TransportTimeout):
            drv.poll()


def test_malformed_xml_is_named_and_the_other_records_are_kept():
    lines = record("4.2e2") + b"<li850><data><co2>4.2e2</co2></da\n" + b"\xfe#@!garbage\n" + record("4.3e2")
    with expected_protocol(LI850, STREAM, [OUTRATE_1, (None, lines)]) as drv:
        result = clocked(drv).poll()
    assert [r.values["co2"] for r in result.readings] == [420.0, 430.0]
    assert len(result.problems) == 2
    assert "not well-formed XML" in result.problems[0] and "</da" in result.problems[0]


def test_a_record_with_a_value_that_is_not_a_number_is_skipped_by_name():
    with expected_protocol(LI850, POLLED, [OUTRATE_0, (ASK, record(co2="4.2e2x"))]) as drv:
        result = drv.poll()
    assert result.readings == []
    assert "<co2> is not a number: '4.2e2x'" in result.problems[0]


def test_noise_before_the_polled_reply_is_named_and_skipped():
    with expected_protocol(LI850, POLLED, [OUTRATE_0, (ASK, b"\xfe~~noise\n" + record())]) as drv:
        result = drv.poll()
    assert len(result.readings) == 1 and "not well-formed XML" in result.problems[0]


def test_another_models_root_is_not_a_record():
    with expected_protocol(LI850, POLLED, [OUTRATE_0, (ASK, record(root="li830") + record())]) as drv:
        result = drv.poll()
    assert len(result.readings) == 1 and "root <li830>, expected <li850>" in result.problems[0]


def test_error_element_and_out_of_window_diagnostics_become_status_flags():
    bad = record(temp="4.6e1", pres="5.0e1", volts="9.5e0", extra="<error>source failure</error>")
    with expected_protocol(LI850, POLLED, [OUTRATE_0, (ASK, bad)]) as drv:
        result = drv.poll()
    (r,) = result.readings
    assert not r.status_ok
    assert r.status_flags == ("analyzer_error", "cell_temp_unstable", "cell_pressure_out_of_range", "low_input_voltage")
    assert drv.last_error == "source failure"


def test_a_refused_outrate_command_fails_the_open_and_closes_the_link():
    refused = (OUTRATE_0[0], b"<li850><ack>false</ack></li850>\n")
    drv = LI850(LI850.Config.model_validate(POLLED), None)
    from drivers.testing import ScriptedTransport

    drv.transport = ScriptedTransport([refused])
    with pytest.raises(Li8x0Error, match="ack>false"):
        drv.open()
    assert not drv.transport.is_open


def test_no_reply_raises_timeout():
    with expected_protocol(LI850, POLLED, [OUTRATE_0, (ASK, None)]) as drv:
        with pytest.raises(TransportTimeout):
            drv.poll()


def test_too_many_bad_lines_is_a_driver_error():
    noise = b"".join(b"\xfe noise %d\n" % i for i in range(40))
    with expected_protocol(LI850, POLLED, [OUTRATE_0, (ASK, noise)]) as drv:
        with pytest.raises(DriverError, match="no reply in 32 lines"):
            drv.poll()


def test_li830_takes_co2_as_dry_and_has_no_water():
    ask = b"<li830><data>?</data></li830>\n"
    setup = (b"<li830><cfg><outrate>0</outrate></cfg></li830>\n", b"<li830><ack>true</ack></li830>\n")
    with expected_protocol(LI830, LI830_CFG, [setup, (ask, record(root="li830"))]) as drv:
        (r,) = drv.poll().readings
    assert r.values["co2_dry"] == 420.13 and "co2" not in r.values and "h2o" not in r.values
    assert drv.config.water_correction == {}


def test_co2_basis_dry_reports_co2_dry():
    with expected_protocol(LI850, {**POLLED, "co2_basis": "dry"}, [OUTRATE_0, (ASK, record())]) as drv:
        (r,) = drv.poll().readings
    assert r.values["co2_dry"] == 420.13 and r.values["h2o"] == 1.2


def test_identify_reads_version_serial_and_one_record():
    pairs = [OUTRATE_0,
             (b"<li850><ver>?</ver></li850>\n", b"<li850><ver>2.0.4</ver></li850>\n"),
             (b"<li850><serialnum>?</serialnum></li850>\n", b"<li850><serialnum>LI850-123</serialnum></li850>\n"),
             (ASK, record())]
    with expected_protocol(LI850, POLLED, pairs) as drv:
        info = drv.identify()
    assert info["version"] == "2.0.4" and info["serial_number"] == "LI850-123"
    assert info["latest"]["co2"] == 420.13 and info["mode"] == "poll"


def test_config_refuses_bad_windows_and_modes():
    with pytest.raises(ValidationError, match="low < high"):
        LI850.Config.model_validate({**POLLED, "cell_temp_c": [53, 50]})
    with pytest.raises(ValidationError):
        LI850.Config.model_validate({**POLLED, "mode": "push"})
