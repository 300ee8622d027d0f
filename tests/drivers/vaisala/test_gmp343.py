"""Expected-communication tests for the Vaisala GMP343 driver: exact bytes out, replies in.

Commands end in CR LF and every reply ends with the prompt `>` (GMP343 User's Guide; tum-esm
hermes co2_sensor.py): set-up `echo off`, `form CO2RAWUC CO2RAW CO2 T " (R C C+F T)"`, `pc`/`rhc`,
then `errs` and `send` per poll, `p <hPa>` and `rh <%RH>` for compensation.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from drivers.testing import ScriptedTransport, expected_protocol
from drivers.transport import TransportTimeout
from drivers.vaisala.gmp343 import GMP343, h2o_percent

CFG = {"id": "gmp-1", "driver": "vaisala.gmp343", "url": "/dev/ttyUSB0"}
COMP = {**CFG, "compensation": {"pressure": "met-1:pressure", "humidity": "met-1:humidity",
                                "temperature": "met-1:temperature"}}
FORM = b'form CO2RAWUC CO2RAW CO2 T " (R C C+F T)"\r\n'
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def setup(pc: str = "off", rhc: str = "off", echo: bool = True) -> list:
    """The set-up exchange when the link opens (the probe still echoes `echo off` itself)."""
    return [
        (b"echo off\r\n", (b"echo off\r\n" if echo else b"") + b"ECHO      : OFF\r\n>"),
        (FORM, b">"),
        (f"pc {pc}\r\n".encode(), f"PC        : {pc.upper()}\r\n>".encode()),
        (f"rhc {rhc}\r\n".encode(), f"RHC       : {rhc.upper()}\r\n>".encode()),
    ]


ERRS_OK = (b"errs\r\n", b"OK: No errors detected.\r\n>")
SEND = (b"send\r\n", b"   409.8    420.3    420.1     25.2  (R C C+F T)\r\n>")


def test_open_sets_the_probe_up_and_a_poll_reads_errs_then_send():
    with expected_protocol(GMP343, CFG, [*setup(), ERRS_OK, SEND]) as drv:
        drv.now = lambda: T0
        result = drv.poll()
    (r,) = result.readings
    assert r.time == T0 and r.device == "gmp-1"
    assert r.values == {"co2": 420.1, "co2_uncompensated": 409.8, "probe_temp": 25.2}
    assert r.status_ok and result.problems == []


def test_compensation_switches_follow_the_configured_sources():
    with expected_protocol(GMP343, COMP, setup("on", "on")) as drv:
        assert drv.sent == {}


def test_set_environment_pushes_pressure_and_humidity_and_skips_small_changes():
    pairs = [*setup("on", "on"),
             (b"p 987.4\r\n", b">"), (b"rh 41.0\r\n", b">"),  # first values: pushed
             (b"p 990.0\r\n", b">"),  # pressure moved 2.6 hPa (> 0.5), humidity 1 % (< 2): only p
             ERRS_OK, SEND]
    with expected_protocol(GMP343, COMP, pairs) as drv:
        drv.set_environment({"pressure": 987.42, "humidity": 41.0, "temperature": 30.0})
        drv.set_environment({"pressure": 987.6, "humidity": 42.0, "temperature": 30.0})  # within deadbands
        drv.set_environment({"pressure": 990.0, "humidity": 42.0, "temperature": 30.0})
        (r,) = drv.poll().readings
    assert drv.sent == {"pressure": 990.0, "humidity": 41.0}
    assert math.isclose(r.values["h2o"], h2o_percent(990.0, 42.0, 30.0), rel_tol=1e-6)


def test_h2o_from_the_station_environment():
    # 40 %RH at 30 degC (Magnus: e_s 42.34 hPa) and 1000 hPa: 1.693 % water vapour
    assert abs(h2o_percent(1000.0, 40.0, 30.0) - 1.6935) < 0.0005


def test_environment_without_a_configured_source_is_not_pushed():
    with expected_protocol(GMP343, CFG, [*setup(), ERRS_OK, SEND]) as drv:
        drv.set_environment({"pressure": 990.0, "humidity": 40.0})
        (r,) = drv.poll().readings
    assert drv.sent == {} and "h2o" not in r.values


def test_errs_lines_flag_the_record():
    errs = (b"errs\r\n", b"Error: IR source intensity too low\r\n>")
    with expected_protocol(GMP343, CFG, [*setup(), errs, SEND]) as drv:
        (r,) = drv.poll().readings
    assert not r.status_ok and r.status_flags == ("probe_error",)
    assert drv.last_errors == ["Error: IR source intensity too low"]


def test_a_malformed_send_line_is_named_and_gives_no_record():
    bad = (b"send\r\n", b"\xfe#@! 409.8 42x\r\n>")
    with expected_protocol(GMP343, CFG, [*setup(), ERRS_OK, bad]) as drv:
        result = drv.poll()
    assert result.readings == []
    assert "not 'raw comp filtered T'" in result.problems[0]


def test_noise_before_the_record_is_named_and_the_record_kept():
    noisy = (b"send\r\n", b"\xfe~~noise\r\n   409.8    420.3    420.1     25.2  (R C C+F T)\r\n>")
    with expected_protocol(GMP343, CFG, [*setup(), ERRS_OK, noisy]) as drv:
        result = drv.poll()
    assert len(result.readings) == 1 and len(result.problems) == 1


def test_an_echoed_command_is_not_a_record():
    echoed = (b"send\r\n", b"send\r\n   409.8    420.3    420.1     25.2  (R C C+F T)\r\n>")
    with expected_protocol(GMP343, CFG, [*setup(), ERRS_OK, echoed]) as drv:
        result = drv.poll()
    assert len(result.readings) == 1 and result.problems == []


def test_no_prompt_is_a_timeout():
    with expected_protocol(GMP343, CFG, [*setup(), (b"errs\r\n", None)]) as drv:
        with pytest.raises(TransportTimeout):
            drv.poll()


def test_a_silent_probe_fails_the_open_and_leaves_the_link_closed():
    drv = GMP343(GMP343.Config.model_validate(CFG), ScriptedTransport([(b"echo off\r\n", None)]))
    with pytest.raises(TransportTimeout):
        drv.open()
    assert not drv.transport.is_open


def test_identify_shows_version_errors_and_a_record():
    pairs = [*setup(), (b"vers\r\n", b"GMP343 - Version STD 2.0\r\n>"), ERRS_OK, SEND]
    with expected_protocol(GMP343, CFG, pairs) as drv:
        info = drv.identify()
    assert info["version"] == "GMP343 - Version STD 2.0" and info["errors"] == []
    assert info["latest"]["co2"] == 420.1


def test_config_refuses_a_source_that_is_not_device_colon_quantity():
    with pytest.raises(ValidationError, match="device:quantity"):
        GMP343.Config.model_validate({**CFG, "compensation": {"pressure": "met-1"}})
    with pytest.raises(ValidationError):
        GMP343.Config.model_validate({**CFG, "compensation": {"wind": "met-1:wind"}})
