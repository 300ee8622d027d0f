"""Expected-communication tests for the Picarro G2401/G2301 driver: exact bytes out, replies in.

Reply formats follow Picarro's CommandInterface (picarro-cchang/Brooks): `N;` then N record lines
for `_Meas_GetBuffer`, `time;value;` per label (older host software) or the time once (newer),
`ERR:<code>` TAB time for errors, every line ending in CR.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from drivers.base import DriverError
from drivers.picarro.g2401 import (
    G2301,
    G2401,
    PicarroError,
    PicarroStatus,
)
from drivers.registry import load_driver
from drivers.testing import ScriptedTransport, expected_protocol
from drivers.transport import TransportError, TransportTimeout
from drivers.water import G2401_WATER_CORRECTION

COLUMNS = ["CO2", "CO2_dry", "CH4", "CH4_dry", "CO", "H2O", "CavityPressure", "CavityTemp"]
SERIAL = {"id": "picarro-1", "driver": "picarro.g2401", "url": "/dev/ttyUSB0", "columns": COLUMNS}
TCP = {**SERIAL, "url": "socket://127.0.0.1:51020"}

STATUS = (b"_Instr_GetStatus\r", b"963\r")
BUFFER = b"_Meas_GetBuffer\r"
T1 = "26/11/22 02:53:12.345"
T2 = "26/11/22 02:53:14.100"
V1 = ["412.345", "420.001", "1.987", "2.010", "0.150", "1.200", "140.002", "45.001"]
V2 = ["412.400", "420.100", "1.988", "2.011", "0.151", "1.210", "139.998", "44.999"]


def per_label(stamp: str, values: list[str]) -> bytes:
    """A record as older host software writes it: `time;value;` for each label, then CR."""
    return ("".join(f"{stamp};{v};" for v in values) + "\r").encode()


def single_time(stamp: str, values: list[str]) -> bytes:
    """A record as newer host software writes it: the time once, then `value;` per label."""
    return (stamp + ";" + "".join(v + ";" for v in values) + "\r").encode()


# ----------------------------------------------------------------------------- status word


def test_status_command_bytes_on_serial_end_in_cr():
    with expected_protocol(G2401, SERIAL, [STATUS]) as drv:
        assert drv.read_status().word == 963


def test_status_command_bytes_on_tcp_end_in_cr_lf():
    with expected_protocol(G2401, TCP, [(b"_Instr_GetStatus\r\n", b"963\r")]) as drv:
        assert drv.read_status().ok


def test_tcp_url_spelled_tcp_also_ends_commands_in_cr_lf():
    cfg = {**SERIAL, "url": "tcp://10.0.0.5:51020"}
    with expected_protocol(G2401, cfg, [(b"_Instr_GetStatus\r\n", b"963\r")]) as drv:
        assert drv.read_status().word == 963


def test_status_963_is_normal_with_its_six_bits_named():
    status = PicarroStatus(963)
    assert status.ok
    assert status.flags == ()
    assert set(status.bits) == {
        "ready", "measuring", "gas_flowing", "pressure_locked",
        "cavity_temp_locked", "warm_box_temp_locked",
    }


def test_status_names_each_abnormal_condition():
    # pressure lock lost (bit 7 clear), system error (bit 14) and warming up (bit 13) set
    status = PicarroStatus(963 - (1 << 7) + (1 << 14) + (1 << 13))
    assert not status.ok
    assert set(status.flags) == {"pressure_unlocked", "system_error", "warming_up"}


def test_status_error_in_buffer_bit_is_abnormal():
    status = PicarroStatus(963 | 1 << 2)
    assert status.flags == ("error_in_buffer",)


def test_status_zero_names_every_missing_bit():
    assert set(PicarroStatus(0).flags) == {
        "not_ready", "not_measuring", "gas_not_flowing", "pressure_unlocked",
        "cavity_temp_unlocked", "warm_box_temp_unlocked",
    }


# ----------------------------------------------------------------------------- buffer


def test_poll_reads_status_then_drains_buffer_in_ghgnet_units():
    pairs = [STATUS, (BUFFER, b"2;\r" + per_label(T1, V1) + per_label(T2, V2))]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        result = drv.poll()
    assert result.problems == []
    assert [r.time for r in result.readings] == [
        datetime(2026, 11, 22, 2, 53, 12, 345000, tzinfo=UTC),
        datetime(2026, 11, 22, 2, 53, 14, 100000, tzinfo=UTC),
    ]
    first = result.readings[0]
    assert first.device == "picarro-1"
    assert first.values == pytest.approx({
        "co2": 412.345, "co2_dry": 420.001, "ch4": 1987.0, "ch4_dry": 2010.0, "co": 150.0,
        "h2o": 1.2, "cavity_pressure": 140.002, "cavity_temp": 45.001,
    })
    assert (first.status, first.status_ok, first.status_flags) == (963, True, ())


def test_poll_accepts_records_with_the_time_written_once():
    pairs = [STATUS, (BUFFER, b"1;\r" + single_time(T1, V1))]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        result = drv.poll()
    assert result.problems == []
    assert result.readings[0].values["ch4"] == pytest.approx(1987.0)


def test_columns_come_from_configuration_in_the_analyzers_order():
    cfg = {**SERIAL, "columns": ["H2O", "CH4", "CO2"]}
    pairs = [STATUS, (BUFFER, b"1;\r" + per_label(T1, ["1.250", "2.001", "415.500"]))]
    with expected_protocol(G2401, cfg, pairs) as drv:
        (reading,) = drv.poll().readings
    assert reading.values == pytest.approx({"h2o": 1.25, "ch4": 2001.0, "co2": 415.5})


def test_analyzer_clock_zone_is_converted_to_utc():
    cfg = {**SERIAL, "analyzer_timezone": "Asia/Shanghai"}
    pairs = [STATUS, (BUFFER, b"1;\r" + per_label(T1, V1))]
    with expected_protocol(G2401, cfg, pairs) as drv:
        (reading,) = drv.poll().readings
    assert reading.time == datetime(2026, 11, 21, 18, 53, 12, 345000, tzinfo=UTC)


def test_wire_units_are_configurable_per_species():
    cfg = {**SERIAL, "columns": ["CH4", "CH4_dry"], "wire_units": {"ch4": "ppb"}}
    pairs = [STATUS, (BUFFER, b"1;\r" + per_label(T1, ["1987.000", "2010.000"]))]
    with expected_protocol(G2401, cfg, pairs) as drv:
        (reading,) = drv.poll().readings
    assert reading.values == pytest.approx({"ch4": 1987.0, "ch4_dry": 2010.0})


def test_empty_buffer_answers_zero_and_gives_no_readings():
    with expected_protocol(G2401, SERIAL, [STATUS, (BUFFER, b"0;\r")]) as drv:
        result = drv.poll()
    assert result.readings == [] and result.problems == []


def test_err_3002_in_place_of_the_count_is_an_empty_buffer():
    pairs = [STATUS, (BUFFER, b"ERR:3002\t26/11/22 02:53:12.345\r")]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        assert drv.poll().readings == []


def test_status_of_the_poll_is_stamped_on_every_record():
    pairs = [(b"_Instr_GetStatus\r", b"17219\r"), (BUFFER, b"1;\r" + per_label(T1, V1))]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        (reading,) = drv.poll().readings
    assert reading.status == 17219
    assert not reading.status_ok
    assert set(reading.status_flags) == {"pressure_unlocked", "system_error"}


# ----------------------------------------------------------------------------- faults


def test_err_reply_to_status_is_a_typed_picarro_error_with_its_code():
    pairs = [(b"_Instr_GetStatus\r", b"ERR:1001\t26/11/22 02:53:12.345\r")]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        with pytest.raises(PicarroError) as info:
            drv.poll()
    assert info.value.code == 1001
    assert isinstance(info.value, DriverError)
    assert "ERR:1001" in str(info.value)


def test_err_reply_to_get_buffer_other_than_empty_raises():
    pairs = [STATUS, (BUFFER, b"ERR:3001\t26/11/22 02:53:12.345\r")]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        with pytest.raises(PicarroError) as info:
            drv.poll()
    assert info.value.code == 3001


def test_known_err_code_is_named():
    err = PicarroError(3002, "ERR:3002\t26/11/22 02:53:12.345", "_Meas_GetBuffer")
    assert err.meaning == "measurement buffer empty"


def test_garbage_before_the_status_reply_is_skipped_and_named():
    pairs = [(b"_Instr_GetStatus\r", b"\xfe#@!x\r963\r"), (BUFFER, b"1;\r" + per_label(T1, V1))]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        result = drv.poll()
    assert len(result.readings) == 1
    assert len(result.problems) == 1 and "_Instr_GetStatus" in result.problems[0]


def test_garbage_line_among_records_is_skipped_and_every_record_kept():
    reply = b"2;\r" + per_label(T1, V1) + b"\x1b~~noise~~\r" + per_label(T2, V2)
    with expected_protocol(G2401, SERIAL, [STATUS, (BUFFER, reply)]) as drv:
        result = drv.poll()
    assert len(result.readings) == 2
    assert len(result.problems) == 1 and "noise" in result.problems[0]


def test_partial_record_line_is_skipped_and_the_records_around_it_kept():
    cut = per_label(T1, V1)[:60] + b"\r"
    reply = b"3;\r" + per_label(T1, V1) + cut + per_label(T2, V2)
    with expected_protocol(G2401, SERIAL, [STATUS, (BUFFER, reply)]) as drv:
        result = drv.poll()
    assert [r.time.second for r in result.readings] == [12, 14]
    assert len(result.problems) == 1 and "malformed" in result.problems[0]


def test_record_with_a_non_numeric_value_is_skipped_and_named():
    bad = per_label(T1, [*V1[:3], "abc", *V1[4:]])
    reply = b"2;\r" + bad + per_label(T2, V2)
    with expected_protocol(G2401, SERIAL, [STATUS, (BUFFER, reply)]) as drv:
        result = drv.poll()
    assert len(result.readings) == 1
    assert "not a number" in result.problems[0]


def test_err_line_inside_the_buffer_reply_is_named_and_does_not_eat_a_record():
    reply = b"2;\r" + per_label(T1, V1) + b"ERR:3002\t26/11/22 02:53:13.000\r" + per_label(T2, V2)
    with expected_protocol(G2401, SERIAL, [STATUS, (BUFFER, reply)]) as drv:
        result = drv.poll()
    assert len(result.readings) == 2
    assert "ERR:3002" in result.problems[0]


def test_timeout_on_status_raises_and_discards_the_stale_partial_reply():
    # The first status reply arrives only in part ("96"); the driver must not read it as the
    # start of the next reply ("96963").
    pairs = [
        (b"_Instr_GetStatus\r", b"96"),
        (b"_Instr_GetStatus\r", b"963\r"),
        (BUFFER, b"0;\r"),
    ]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        with pytest.raises(TransportTimeout) as info:
            drv.poll()
        assert info.value.partial == b"96"
        assert drv.poll().readings == []


def test_silent_analyzer_raises_transport_timeout():
    with expected_protocol(G2401, SERIAL, [(b"_Instr_GetStatus\r", None)]) as drv:
        with pytest.raises(TransportTimeout):
            drv.poll()


def test_timeout_before_any_record_raises():
    with expected_protocol(G2401, SERIAL, [STATUS, (BUFFER, b"2;\r")]) as drv:
        with pytest.raises(TransportTimeout):
            drv.poll()


def test_timeout_mid_buffer_keeps_the_records_already_popped():
    reply = b"3;\r" + per_label(T1, V1) + per_label(T2, V2)[:40]
    with expected_protocol(G2401, SERIAL, [STATUS, (BUFFER, reply)]) as drv:
        result = drv.poll()
    assert len(result.readings) == 1
    assert "cut after 1 of 3" in result.problems[0]


def test_dropped_connection_on_status_raises_transport_error_not_timeout():
    pairs = [(b"_Instr_GetStatus\r", ScriptedTransport.DISCONNECT)]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        with pytest.raises(TransportError) as info:
            drv.poll()
    assert not isinstance(info.value, TransportTimeout)
    assert not drv.transport.is_open


def test_dropped_connection_mid_buffer_keeps_the_records_read():
    reply = b"2;\r" + per_label(T1, V1) + ScriptedTransport.DISCONNECT
    with expected_protocol(G2401, SERIAL, [STATUS, (BUFFER, reply)]) as drv:
        result = drv.poll()
        assert len(result.readings) == 1
        assert "cut after 1 of 2" in result.problems[0]
        with pytest.raises(TransportError):
            drv.poll()  # the link is gone: the next poll says so, and the engine reopens


def test_endless_noise_instead_of_a_status_reply_is_a_driver_error():
    pairs = [(b"_Instr_GetStatus\r", b"\xfe?\r" * 40)]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        with pytest.raises(DriverError):
            drv.poll()


# ----------------------------------------------------------------------------- probe


def test_identify_reads_status_and_latest_values_without_touching_the_buffer():
    pairs = [
        STATUS,
        (b"_Meas_GetConcEx\r", (T1 + ";" + ";".join(V1) + "\r").encode()),
    ]
    with expected_protocol(G2401, SERIAL, pairs) as drv:
        info = drv.identify()
    assert info["status"] == 963 and info["status_ok"] is True
    assert info["latest"]["ch4"] == pytest.approx(1987.0)
    assert info["latest"]["time"].startswith("2026-11-22T02:53:12.345")


# ----------------------------------------------------------------------------- configuration


def test_unknown_column_is_a_config_error_listing_the_known_labels():
    with pytest.raises(ValidationError) as info:
        G2401.Config.model_validate({**SERIAL, "columns": ["CO2", "N2O"]})
    text = str(info.value)
    assert "'N2O'" in text and "CO2_dry" in text and "CavityPressure" in text


def test_g2301_measures_no_co():
    with pytest.raises(ValidationError, match="unknown column"):
        G2301.Config.model_validate({**SERIAL, "driver": "picarro.g2301", "columns": ["CO"]})
    cfg = G2301.Config.model_validate({**SERIAL, "driver": "picarro.g2301", "columns": ["CO2"]})
    assert "co" not in cfg.water_correction


def test_defaults_match_the_analyzer():
    cfg = G2401.Config.model_validate({"id": "p", "url": "/dev/ttyS0"})
    assert cfg.driver == "picarro.g2401"
    assert (cfg.baudrate, cfg.poll_interval_s, cfg.analyzer_timezone) == (19200, 5.0, "UTC")
    assert cfg.water_correction["co2"] == (-0.012000, -0.0002674)
    assert cfg.water_correction["ch4"] == (-0.0098200, -0.0002393)
    assert cfg.water_correction == G2401_WATER_CORRECTION


def test_unconvertible_wire_unit_is_a_config_error():
    with pytest.raises(ValidationError, match="cannot convert"):
        G2401.Config.model_validate({**SERIAL, "wire_units": {"ch4": "%"}})


def test_unknown_timezone_is_a_config_error():
    with pytest.raises(ValidationError, match="unknown time zone"):
        G2401.Config.model_validate({**SERIAL, "analyzer_timezone": "Mars/Olympus"})


def test_both_models_are_registered_under_their_names():
    assert load_driver("picarro.g2401") is G2401
    assert load_driver("picarro.g2301") is G2301
