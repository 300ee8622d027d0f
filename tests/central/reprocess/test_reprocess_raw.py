"""Reprocessing from the raw archive (L0): a station's raw rows archived through the real archive
API (put_raw_chunk, central/archive raw_readings) on SQLite and PostgreSQL; rebuilt at central they
give the station's own minutes (built here with the station's code: MinuteAssembler bins and its
ProcessingConfig limits) to 1e-9, a K manual flag over half a minute excludes those raw samples,
and `central-receiver reprocess` says which source it used."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import structlog
from test_reprocess import CONFIG, DEVICE, RECEIVED, T0, calibration  # tests/central/reprocess/test_reprocess.py
from typer.testing import CliRunner

from central.cli import app
from central.reprocess import reprocess_period
from central.reprocess.period import minute_inputs
from central.reprocess.raw import DEFAULT_LIMITS, StationProcessing, load_station_processing
from central.store import open_store
from drivers.reading import Reading
from ghgnet.processing.minute_record import MinuteLimits, apply_calibration, minute_record
from ghgnet.timeutil import iso_utc
from ghgnet.wire import MinuteWire, ParsedBatch, SpeciesStats
from ghgnet.wire.raw import encode_chunk
from station_agent.config import ProcessingConfig
from station_agent.processing.minute_bins import MinuteAssembler

STORE = "0123456789abcdef0123456789abcdef"
START = T0 + timedelta(hours=1)
MINUTES = 10
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def raw_rows() -> list[dict]:
    """Ten minutes of 1 s samples of DEVICE on inlet:100m (the first 40 s flushing, a status fault
    and a NaN H2O now and then), and met-1's auxiliary T/RH every 10 s."""
    rng = np.random.default_rng(21)
    rows = []
    for i in range(MINUTES * 60):
        t = START + timedelta(seconds=i, milliseconds=250)
        rows.append({"device": DEVICE, "time": iso_utc(t), "stream": "inlet:100m", "flushing": i < 40,
                     "status": 963, "status_ok": i % 97 != 5, "status_flags": [] if i % 97 != 5 else ["bad"],
                     "values": {"co2_dry": 420.0 + 0.3 * np.sin(i / 40) + rng.normal(0, 0.05),
                                "h2o": None if i % 53 == 3 else 1.2 + rng.normal(0, 0.01),
                                "cavity_pressure": 140.0, "cavity_temp": 45.0},
                     "conditions": []})
        if i % 10 == 0:
            rows.append({"device": "met-1", "time": iso_utc(t), "stream": "aux", "flushing": False, "status": None,
                         "status_ok": True, "status_flags": [], "values": {"temperature": 5.0, "humidity": 80.0},
                         "conditions": []})
    return rows


def station_minutes(rows: list[dict]):
    """The station's own minutes from these rows: its bins (auxiliary rows left out as its writer
    does) and its default limits, calibrated with the identity calibration at T0."""
    asm = MinuteAssembler(20)
    readings = [Reading(datetime.fromisoformat(r["time"].replace("Z", "+00:00")), r["device"],
                        {k: (float("nan") if v is None else v) for k, v in r["values"].items()},
                        r["status"], r["status_ok"], tuple(r["status_flags"]), stream=r["stream"],
                        flushing=r["flushing"]) for r in rows if r["stream"] != "aux"]
    bins = asm.add(readings) + asm.drained(DEVICE, START + timedelta(minutes=MINUTES + 5))
    cal = calibration(1, T0, 380.0, 460.0)
    out = []
    for b in bins:
        times, values, ok, flushing = b.arrays()
        rec = minute_record(b.minute, b.device, b.stream, times, values, ok, flushing, ProcessingConfig())
        out.append(apply_calibration(rec, {"co2": cal.fits["co2"].coefficients}, cal.id))
    return cal, out


def fill(store, archived: timedelta = timedelta(minutes=MINUTES)) -> list:
    cal, recs = station_minutes(raw_rows())
    assert len(recs) == MINUTES
    store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED, [cal, calibration(2, T0 + timedelta(hours=4),
                                                                                    380.0, 460.0)]), RECEIVED)
    wires = [MinuteWire(seq=10 + i, time=r.time, device=r.device, stream=r.stream,
                        species={sp: SpeciesStats(mean=v.mean, std=v.std, n=v.n, raw_mean=v.raw_mean,
                                                  cal_mean=v.cal_mean) for sp, v in r.species.items()},
                        flag=r.flag, reasons=list(r.reasons), n_total=r.n_total, calibration_id=cal.id)
             for i, r in enumerate(recs)]
    store.store_batch(ParsedBatch("st-a", "minute", RECEIVED, wires), RECEIVED)
    rows = raw_rows()
    for device in (DEVICE, "met-1"):
        mine = [r for r in rows if r["device"] == device and r["time"] < iso_utc(START + archived)]
        chunk = encode_chunk("st-a", STORE, device, START, START + archived, mine)
        assert store.put_raw_chunk(chunk, RECEIVED) == "stored"
    return recs


def test_the_central_defaults_are_the_stations():
    assert DEFAULT_LIMITS == MinuteLimits.from_config(ProcessingConfig())


def test_minutes_rebuilt_from_raw_are_the_stations_and_a_k_flag_excludes_raw_samples(store):
    recs = fill(store)
    end = START + timedelta(minutes=MINUTES)
    inputs = minute_inputs(store, "st-a", START, end, "raw")
    assert (inputs.from_raw, inputs.from_stored, inputs.raw_only) == (MINUTES, 0, 0)
    assert [m.device for m in inputs.minutes] == [DEVICE] * MINUTES  # met-1 makes no minutes
    for m, r in zip(inputs.minutes, recs, strict=True):
        assert (m.time, m.stream, m.flag, m.reasons) == (r.time, r.stream, r.flag, tuple(r.reasons))
        assert m.species["co2"]["n"] == r.species["co2"].n
        assert m.species["co2"]["raw_mean"] == pytest.approx(r.species["co2"].raw_mean, abs=1e-9)
        assert m.species["co2"]["std"] == pytest.approx(r.species["co2"].std, abs=1e-9)
    assert {"flush", "status"} <= set(recs[0].reasons)  # the station's exclusions were redone
    # the first run writes each minute again with interpolated calibrations (the same identity
    # fits: the values do not move); a second finds nothing to change
    s = reprocess_period(store, CONFIG, "st-a", START, end, [], "from raw", "op", NOW, source="raw")
    assert s.minutes == MINUTES and s.source.startswith("raw archive (L0)")
    assert max(abs(v) for v in s.minute_shift.values()) < 1e-9
    s = reprocess_period(store, CONFIG, "st-a", START, end, [], "from raw", "op", NOW, source="raw")
    assert (s.minutes, s.unchanged) == (0, MINUTES)

    # a K flag over the first 30 s of the fourth minute: those raw samples are excluded
    flagged = START + timedelta(minutes=3)
    store.add_manual_flag("st-a", flagged, flagged + timedelta(seconds=30), "K", "pump fault", "op", NOW, None,
                          None, "other")
    s = reprocess_period(store, CONFIG, "st-a", START, end, [], "K flag over raw samples", "op", NOW)
    assert (s.minutes, s.unchanged) == (1, MINUTES - 1)
    keep = [r for r in raw_rows() if r["device"] == DEVICE and iso_utc(flagged + timedelta(seconds=30)) <= r["time"]
            < iso_utc(flagged + timedelta(minutes=1)) and r["status_ok"]]
    expected = float(np.mean([r["values"]["co2_dry"] for r in keep]))
    (v,) = [m for m in store.minute_versions("st-a", flagged, flagged + timedelta(minutes=1), "latest")]
    assert v.species["co2"].n == len(keep) < recs[3].species["co2"].n
    assert v.species["co2"].raw_mean == pytest.approx(expected, abs=1e-9)
    assert v.species["co2"].cal_mean == pytest.approx(expected, abs=1e-6)  # an identity calibration


def test_a_minute_the_archive_holds_only_part_of_keeps_its_stored_values(store):
    fill(store, archived=timedelta(minutes=4, seconds=30))  # the next chunk not uploaded yet
    inputs = minute_inputs(store, "st-a", START, START + timedelta(minutes=MINUTES))
    assert (inputs.from_raw, inputs.from_stored) == (4, MINUTES - 4)
    assert [m.previous is not None for m in inputs.minutes] == [True] * 4 + [False] * (MINUTES - 4)
    # the period's edge: a period ending inside a minute does not rebuild it
    inputs = minute_inputs(store, "st-a", START, START + timedelta(minutes=2, seconds=30))
    assert (inputs.from_raw, inputs.from_stored) == (2, 1)


def test_stored_source_and_a_period_without_raw_rows(store):
    fill(store)
    end = START + timedelta(minutes=MINUTES)
    assert minute_inputs(store, "st-a", START, end, "stored").from_raw == 0
    later = (T0 + timedelta(hours=5), T0 + timedelta(hours=6))
    with pytest.raises(ValueError, match="no minutes|no raw rows"):
        minute_inputs(store, "st-a", *later, "raw")


def test_load_station_processing_reads_the_station_config(tmp_path):
    f = tmp_path / "station.toml"
    f.write_text('[processing]\nmin_samples = 5\n[[devices]]\nid = "pic-1"\nwater_correction = { co2 = [-0.012, -0.0002] }\n')
    p = load_station_processing(f)
    assert p.limits.min_samples == 5 and p.limits.max_std == DEFAULT_LIMITS.max_std
    assert set(p.for_device("pic-1").water) == {"co2"} and not p.for_device("other").water
    f.write_text('[processing]\nmin_samples = "many"\n')
    with pytest.raises(ValueError, match="station.toml: \\[processing\\]"):
        load_station_processing(f)
    assert isinstance(StationProcessing().limits, MinuteLimits)


@pytest.fixture
def structlog_restored():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_the_command_says_which_source_it_used(tmp_path: Path, structlog_restored):
    cfg = tmp_path / "central.toml"
    cfg.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 1883\n[storage]\npath = "central.sqlite"\n'
                   '[aggregate]\nmin_minutes_per_hour = 3\n')
    store = open_store("sqlite", path=tmp_path / "central.sqlite")
    fill(store)
    store.close()
    station = tmp_path / "station.toml"
    station.write_text("[processing]\nmin_samples = 10\n")
    args = ["reprocess", "--config", str(cfg), "--station", "st-a", "--from", iso_utc(START), "--to",
            iso_utc(START + timedelta(minutes=MINUTES))]
    r = CliRunner().invoke(app, [*args, "--from-raw", "--processing", str(station)])
    assert r.exit_code == 0, r.output
    assert f"minutes from raw archive (L0): {MINUTES} minute(s) rebuilt from raw rows with limits from {station}" \
        in r.stdout
    r = CliRunner().invoke(app, [*args, "--from-stored", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["source"] == "stored minutes"
    r = CliRunner().invoke(app, [*args, "--from-raw", "--from-stored"])
    assert r.exit_code == 2 and "choose one" in r.output
