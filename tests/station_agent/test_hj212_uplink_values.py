"""What an HJ 212 uplink says about stored minutes (pure: hj212_values, the packer's QNs and splits),
and the `[[uplinks]]` config with its errors naming the field."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ghgnet.config import ConfigError
from ghgnet.hj212 import MAX_SEGMENT, Packet, make_flag, segment_size
from ghgnet.logs import get_logger
from ghgnet.records import MinuteRecord, SpeciesMinute, minute_to_dict
from station_agent.config import load_station_config
from station_agent.forwarding.hj212_config import FactorConfig, UplinkConfig
from station_agent.forwarding.hj212_uplink import UplinkPacker, next_qn
from station_agent.forwarding.hj212_values import flag_of, period_end, period_start, points_between

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "station.example.toml"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def cfg(**kw) -> UplinkConfig:
    return UplinkConfig(**({"name": "national", "host": "127.0.0.1", "port": 9212, "mn": "MN1", "pw": "123456"} | kw))


def row(i: int, stream: str = "inlet:top", flag: str = "U", reasons=(), co2: float | None = None,
        device: str = "picarro-1") -> dict:
    value = 420.0 + i if co2 is None else co2
    rec = MinuteRecord(time=T0 + timedelta(minutes=i), device=device, stream=stream,
                       species={"co2": SpeciesMinute(value, 0.1, 50, value, value)}, h2o=1.0, flag=flag,
                       reasons=tuple(reasons), n_total=60)
    return minute_to_dict(rec)


def test_co2_is_sent_in_mg_m3_at_standard_conditions_and_ch4_in_the_tables_unit():
    c = cfg()
    assert [(f.code, f.unit, f.decimals) for f in c.factors] == [("a05001", "mg/m3", 3), ("a05002", "ng/m3", 1)]
    (point,) = points_between([row(0, co2=400.0)], T0, T0 + timedelta(minutes=1), c, 2051)
    assert dict(point.factors[0]) == {"a05001-Avg": "785.402", "a05001-Flag": "N"}  # 400 x 44.01 / 22.414


def test_real_time_uses_rtd_and_minutes_have_no_invented_extremes():
    (rt,) = points_between([row(0)], T0, T0 + timedelta(minutes=1), cfg(factors=[FactorConfig(
        species="co2", code="a05001", unit="ppm")]), 2011)
    assert dict(rt.factors[0]) == {"a05001-Rtd": "420.000", "a05001-Flag": "N"}


def test_only_ambient_minutes_of_the_configured_streams_and_devices_are_sent():
    rows = [row(0), row(1, stream="cal:CAL-1"), row(2, stream="target:TGT-1"), row(3, stream="inlet:low"),
            row(4, device="li7820-1")]
    end = T0 + timedelta(minutes=10)
    assert [p.time.minute for p in points_between(rows, T0, end, cfg(), 2051)] == [0, 3, 4]
    assert [p.time.minute for p in points_between(rows, T0, end, cfg(streams=["inlet:top"], devices=["picarro-1"]),
                                                  2051)] == [0]


def test_flags_follow_the_reasons_and_the_uplinks_overrides():
    rows = [row(0), row(1, flag="N", reasons=("maintenance",)), row(2, flag="N", reasons=("status",))]
    assert [flag_of(cfg())(r) for r in rows] == ["N", "M", "D"]
    assert [flag_of(cfg(flags={"status": "B"}))(r) for r in rows] == ["N", "M", "B"]


def test_an_hour_averages_its_valid_minutes_and_otherwise_takes_the_most_common_flag():
    c = cfg(factors=[FactorConfig(species="co2", code="a05001", unit="ppm", decimals=1)], hour_min_valid_minutes=3)
    good = [row(i) for i in range(3)] + [row(3, flag="N", reasons=("maintenance",), co2=999.0)]
    (hour,) = points_between(good, T0, T0 + timedelta(hours=1), c, 2061)
    assert dict(hour.factors[0]) == {"a05001-Min": "420.0", "a05001-Avg": "421.0", "a05001-Max": "422.0",
                                     "a05001-Flag": "N"}
    # too few valid minutes: every ambient minute's value, and the flag of most minutes (cylinders: C)
    few = [row(0), row(1, flag="N", reasons=("status",))] + [row(i, stream="cal:CAL-1") for i in range(2, 6)]
    (hour,) = points_between(few, T0, T0 + timedelta(hours=1), c, 2061)
    assert dict(hour.factors[0]) == {"a05001-Min": "420.0", "a05001-Avg": "420.5", "a05001-Max": "421.0",
                                     "a05001-Flag": "C"}


def test_hours_and_days_are_periods_of_the_uplinks_zone_and_datatime_is_their_start():
    t = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # 01:30 on 2 March in Beijing
    assert period_start(t, 2031, "Asia/Shanghai") == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert period_end(datetime(2026, 3, 1, 16, tzinfo=UTC), 2031, "Asia/Shanghai") == datetime(2026, 3, 2, 16,
                                                                                                 tzinfo=UTC)
    assert period_start(t, 2061, "Asia/Shanghai") == datetime(2026, 3, 1, 17, tzinfo=UTC)
    assert period_start(t, 2031, "UTC") == datetime(2026, 3, 1, tzinfo=UTC)
    days = points_between([row(0), row(60 * 17)], T0 - timedelta(hours=8), T0 + timedelta(days=2), cfg(), 2031)
    assert [p.time for p in days] == [datetime(2026, 2, 28, 16, tzinfo=UTC), datetime(2026, 3, 1, 16, tzinfo=UTC)]


def test_qns_only_grow_also_when_the_clock_steps_back():
    assert next_qn("", datetime(2026, 3, 1, 8, 0, 0, 5000)) == "20260301080000005"
    assert next_qn("20260301080000005", datetime(2026, 3, 1, 8, 0, 0, 5000)) == "20260301080000006"
    assert next_qn("20260301090000999", datetime(2026, 3, 1, 8)) == "20260301090001000"


def test_a_point_too_big_for_one_packet_is_split_with_room_for_the_longest_mn_and_pw():
    c = cfg(mn="M1", pw="1", factors=[FactorConfig(species="co2", code=f"x{i:02d}", unit="ug/m3", decimals=9)
                                      for i in range(30)])
    (point,) = points_between([row(0)], T0, T0 + timedelta(minutes=1), c, 2051)
    packets = UplinkPacker(c, get_logger()).packets([point], 2051, "", T0)
    assert len(packets) > 1 and [p.pno for p in packets] == list(range(1, len(packets) + 1))
    assert len({p.qn for p in packets}) == len(packets)
    for p in packets:  # each part fits with a 24-character MN and a 6-character PW
        part = Packet(qn=p.qn, st="22", cn="2051", pw="123456", mn="X" * 24, flag=make_flag(ack=True, split=True),
                      pnum=p.pnum, pno=p.pno, cp=json.loads(p.cp))
        assert segment_size(part) <= MAX_SEGMENT
        assert part.cp[0] == {"DataTime": "20260301080000"}


def test_the_commented_example_uplink_is_valid(tmp_path):
    text = EXAMPLE.read_text()
    block = text[text.index("# [[uplinks]]"):]
    uncommented = text.replace(block, "\n".join(line[2:] for line in block.splitlines()))
    path = tmp_path / "station.toml"
    path.write_text(uncommented)
    config = load_station_config(path)
    assert [u.name for u in config.uplinks] == ["national"] and config.uplinks[0].streams == ["inlet:top"]


@pytest.mark.parametrize(("table", "error"), [
    ('name = "a"\nhost = "h"\nport = 1\nmn = "MN1"\npw = "1234567"', "uplinks.0.pw: String should match pattern"),
    ('name = "a"\nhost = "h"\nport = 1\nmn = "MN1"\npw = "1"\ndata = [2052]', "uplinks.0.data.0: Input should be"),
    ('name = "a"\nhost = "h"\nport = 1\nmn = "MN1"\npw = "1"\nstreams = ["cal:CAL-1"]',
     "uplinks.0.streams: Value error, ['cal:CAL-1']: only ambient inlet streams"),
    ('name = "a"\nhost = "h"\nport = 1\nmn = "MN1"\npw = "1"\nflags = { maintenance = "X" }',
     "uplinks.0.flags: Value error, flags.maintenance: 'X' is not one of the standard's flags"),
    ('name = "a"\nhost = "h"\nport = 1\nmn = "MN1"\npw = "1"\ntimezone = "Mars/Olympus"',
     "uplinks.0.timezone: Value error, unknown time zone"),
    ('name = "a"\nhost = "h"\nport = 1\nmn = "MN1"\npw = "1"\nfactors = [{ species = "h2o", code = "w1" }]',
     "uplinks.0.factors.0.species: Value error, 'h2o' is not a species measured as a mole fraction"),
])
def test_config_errors_name_the_field(tmp_path, table, error):
    path = tmp_path / "station.toml"
    path.write_text('[station]\nid = "t"\n\n[[analyzers]]\nid = "p"\ndriver = "picarro.g2401"\n'
                    'url = "socket://127.0.0.1:1"\n\n[[uplinks]]\n' + table + "\n")
    with pytest.raises(ConfigError) as err:
        load_station_config(path)
    assert any(line.startswith(f"{path}: {error}") for line in err.value.lines), err.value.lines


def test_two_uplinks_with_one_name_are_refused_by_config_check(tmp_path):
    one = '[[uplinks]]\nname = "a"\nhost = "h"\nport = 1\nmn = "MN1"\npw = "1"\n'
    path = tmp_path / "station.toml"
    path.write_text('[station]\nid = "t"\n\n[[analyzers]]\nid = "p"\ndriver = "picarro.g2401"\n'
                    'url = "socket://127.0.0.1:1"\n\n' + one + "\n" + one)
    res = subprocess.run([sys.executable, "-m", "station_agent.cli", "config", "check", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "name(s) ['a'] used twice" in res.stdout + res.stderr
