"""Expected communication of the LGR GGA, UGGA and MGGA drivers: the analyzer only streams, so
every script is unprompted bytes (None, data) and the driver must never write a byte
(expected_protocol fails any write).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.base import PollResult
from drivers.lgr.columns import LAYOUT_2014, LAYOUT_2019, Layout, LayoutError, parse_identity, parse_time
from drivers.lgr.ugga import GGA, MGGA, UGGA
from drivers.testing import ScriptedTransport, expected_protocol
from drivers.transport import TransportError, TransportTimeout
from ghgnet.clock import ManualClock

HEADER_2014 = ("                     Time,      [CH4]_ppm,   [CH4]_ppm_sd,      [H2O]_ppm,   [H2O]_ppm_sd,"
               "      [CO2]_ppm,   [CO2]_ppm_sd,     [CH4]d_ppm,  [CH4]d_ppm_sd,     [CO2]d_ppm,  [CO2]d_ppm_sd,"
               "      GasP_torr,   GasP_torr_sd,         GasT_C,      GasT_C_sd,         AmbT_C,      AmbT_C_sd,"
               "         RD0_us,      RD0_us_sd,         RD1_us,      RD1_us_sd,       Fit_Flag,      MIU_VALVE,"
               "       MIU_DESC\r\n")


def rec_2014(stamp: str, ch4_ppm: float, h2o_ppm: float, co2: float, ch4d: float, co2d: float, fit: int = 3) -> str:
    vals = [ch4_ppm, 0.0, h2o_ppm, 0.0, co2, 0.0, ch4d, 0.0, co2d, 0.0, 139.8, 0.0, 20.41, 0.0, 20.7, 0.0,
            9.61, 0.0, 10.82, 0.0]
    return (f"{stamp:>25}," + ",".join(f"{v:15.6e}" for v in vals) + f",{fit:>15},{0:>15},{'1 meters':>15}\r\n")


R1 = rec_2014("10/04/2021 11:58:39.954", 2.017142, 12167.43, 433.5605, 2.041988, 438.9008)
R2 = rec_2014("10/04/2021 11:58:40.930", 2.017773, 12248.26, 433.6950, 2.042794, 439.0729)
R_BAD_FIT = rec_2014("10/04/2021 11:58:41.906", 0.0, 12124.54, 434.6889, 0.0, 214.1, fit=2)

CONFIG = {"id": "ugga-1", "driver": "lgr.gga", "url": "socket://127.0.0.1:23"}


def test_a_poll_reads_every_record_that_arrived_and_writes_nothing():
    with expected_protocol(GGA, CONFIG, [(None, (HEADER_2014 + R1 + R2).encode())]) as drv:
        result = drv.poll()
    assert result.problems == []
    assert [r.time for r in result.readings] == [
        datetime(2021, 10, 4, 11, 58, 39, 954000, tzinfo=UTC), datetime(2021, 10, 4, 11, 58, 40, 930000, tzinfo=UTC)]
    first = result.readings[0]
    assert first.values == {
        "ch4": 2017.142, "h2o": 1.216743, "co2": 433.5605, "ch4_dry": 2041.988, "co2_dry": 438.9008,
        "cavity_pressure": 139.8, "cavity_temp": 20.41, "ambient_temp": 20.7, "ringdown_0": 9.61, "ringdown_1": 10.82,
    }
    assert (first.status, first.status_ok, first.status_flags) == (3, True, ())
    assert drv.header_seen


def test_a_record_without_fit_flag_3_is_kept_invalid_and_named():
    with expected_protocol(MGGA, dict(CONFIG, driver="lgr.mgga"), [(None, (R1 + R_BAD_FIT + R2).encode())]) as drv:
        result = drv.poll()
    assert [r.status_ok for r in result.readings] == [True, False, True]
    bad = result.readings[1]
    assert (bad.status, bad.status_flags) == (2, ("fit_flag_2",))
    assert not drv.header_seen  # read by the model's default columns until a header comes


def test_a_line_cut_between_polls_is_completed_by_the_next_poll():
    transport = ScriptedTransport([(None, (R1 + R2[:50]).encode())])
    drv = GGA(GGA.Config.model_validate(CONFIG), transport)
    drv.open()
    assert len(drv.poll().readings) == 1
    transport._pairs.append((None, R2[50:].encode()))
    second = drv.poll()
    assert second.problems == [] and second.readings[0].values["co2_dry"] == 439.0729


def test_noise_and_wrong_field_counts_are_named_and_the_records_around_them_kept():
    noise = "\xfe~#@!,,garbage\r\n"
    short = R2.split(",", 5)[0] + ",1.0,2.0\r\n"
    with expected_protocol(GGA, CONFIG, [(None, (R1 + noise + short + R2).encode("latin-1"))]) as drv:
        result = drv.poll()
    assert len(result.readings) == 2
    assert len(result.problems) == 2
    assert "fields for the 24 columns" in result.problems[0] or "bad time" in result.problems[0]
    assert "3 fields for the 24 columns" in result.problems[1]


def test_a_new_header_changes_the_columns_records_are_read_by():
    """Firmware 2019 moves CO2 before H2O and adds SysTime and battery columns."""
    header = ", ".join(LAYOUT_2019) + "\r\n"
    fields = {n: "0.0" for n in LAYOUT_2019}
    fields.update({"SysTime": "28/09/2022 12:05:11.108", "Time": "28/09/2022 12:05:10.809", "[CH4]_ppm": "2.00439e+0",
                   "[CO2]_ppm": "4.19535e+2", "[H2O]_ppm": "1.23459e+4", "[CH4]d_ppm": "2.02958e+0",
                   "[CO2]d_ppm": "4.24779e+2", "GasP_torr": "1.40e+2", "Fit_Flag": "3", "MIU_VALVE": "-1",
                   "MIU_DESC": "Disabled"})
    record = ", ".join(fields[n] for n in LAYOUT_2019) + "\r\n"
    cfg = dict(CONFIG, driver="lgr.ugga", date_order="dmy")
    with expected_protocol(UGGA, cfg, [(None, (R1 + "SN:3K43 BD:May 20 2019 VC:1ab9a44\r\n" + header + record)
                                        .encode())]) as drv:
        result = drv.poll()
    # R1 arrives before the header: read by the configured (2019 default) columns, it fails
    assert len(result.problems) == 1 and "24 fields for the 35 columns" in result.problems[0]
    (r,) = result.readings
    assert r.time == datetime(2022, 9, 28, 12, 5, 10, 809000, tzinfo=UTC)  # Time, not SysTime
    assert r.values["co2_dry"] == 424.779 and r.values["ch4_dry"] == 2029.58 and r.values["h2o"] == 1.23459
    assert drv.identity == {"SN": "3K43", "BD": "May 20 2019", "VC": "1ab9a44"}


def test_columns_from_the_config_are_used_until_a_header_arrives():
    cols = list(LAYOUT_2014)
    cols[3], cols[5] = cols[5], cols[3]  # a firmware writing CO2 before H2O
    with expected_protocol(GGA, dict(CONFIG, columns=cols), [(None, R1.encode())]) as drv:
        (r,) = drv.poll().readings
    assert r.values["co2"] == 12167.43 and r.values["h2o"] == pytest.approx(0.04335605)


def test_the_time_zone_and_date_order_are_configuration():
    with expected_protocol(GGA, dict(CONFIG, date_order="dmy", analyzer_timezone="Asia/Shanghai"),
                           [(None, R1.encode())]) as drv:
        (r,) = drv.poll().readings
    assert r.time == datetime(2021, 4, 10, 3, 58, 39, 954000, tzinfo=UTC)


def test_silence_is_a_timeout_only_after_silent_s_of_the_engine_clock():
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    with expected_protocol(GGA, dict(CONFIG, silent_s=30), []) as drv:
        drv.now = clock.now
        assert drv.poll() == PollResult()
        clock.advance(29)
        assert drv.poll() == PollResult()
        clock.advance(1)
        with pytest.raises(TransportTimeout, match="nothing from .* for 30 s"):
            drv.poll()
        assert drv.poll() == PollResult()  # the next timeout after another 30 s


def test_a_dropped_link_is_a_transport_error():
    with expected_protocol(GGA, CONFIG, [(None, ScriptedTransport.DISCONNECT)]) as drv, \
            pytest.raises(TransportError):
        drv.poll()


def test_identify_reads_until_the_first_record():
    with expected_protocol(GGA, CONFIG, [(None, ("VC:2f90039 BD:Jan 16 2014 SN:LGR-14-0061\r\n" + HEADER_2014 + R1)
                                         .encode())]) as drv:
        info = drv.identify()
    assert info["identity"]["SN"] == "LGR-14-0061" and info["header_seen"]
    assert info["latest"]["co2_dry"] == 438.9008 and info["latest"]["valid"]


@pytest.mark.parametrize(("columns", "message"), [
    (["[CO2]_ppm", "Fit_Flag"], "no time column"),
    (["Time", "[CO2]_ppm"], "no Fit_Flag"),
    (["Time", "GasP_torr", "Fit_Flag"], "no mole-fraction column"),
    (["Time", "Time", "[CO2]d_ppm", "Fit_Flag"], "named twice"),
])
def test_unusable_column_lists_are_refused_with_the_reason(columns, message):
    with pytest.raises(LayoutError, match=message):
        Layout.from_names(columns)
    with pytest.raises(ValueError, match=message):
        GGA.Config.model_validate(dict(CONFIG, columns=columns))


@pytest.mark.parametrize(("stamp", "order", "expected"), [
    ("04/10/2021 11:58:39.954", "mdy", datetime(2021, 4, 10, 11, 58, 39, 954000)),
    ("28/09/2022 12:05:00.068", "dmy", datetime(2022, 9, 28, 12, 5, 0, 68000)),
    ("2020/08/22 14:22:55.041", "mdy", datetime(2020, 8, 22, 14, 22, 55, 41000)),  # year first always
    ("07/31/20 12:05:32.661", "mdy", datetime(2020, 7, 31, 12, 5, 32, 661000)),
])
def test_time_stamps_of_every_firmware(stamp, order, expected):
    assert parse_time(stamp, order) == expected


def test_identity_lines_of_both_generations():
    assert parse_identity("VC:2f90039 BD:Jan 16 2014 SN:LGR-14-0061") == {
        "VC": "2f90039", "BD": "Jan 16 2014", "SN": "LGR-14-0061"}
    assert parse_identity("SN:3K430000008886 BD:May 20 2019 VC:1ab9a44 MD5:50c6")["MD5"] == "50c6"


def test_n2o_co_spelling_of_dry_columns_and_units():
    layout = Layout.from_names(["Time", "[CO]_ppm", "[CO]_ppm_se", "[N2O_dry]_ppm", "[CO_dry]_ppm", "Fit_Flag"])
    assert [(c.quantity, c.factor) for c in layout.columns] == [("co", 1000.0), ("n2o_dry", 1000.0),
                                                              ("co_dry", 1000.0)]
