"""`[observations] source = "store"`: afternoon hourly means and target-gas errors from central's store.

The store is built the real way: a synthetic twin's hourly values become minute records sent as
wire batches through central's Ingestor into SQLite (with target runs as calibration batches and
an operator's manual flags), then central's aggregator computes the hourly rows the inversion reads.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from central.aggregation.worker import aggregate_all
from central.config import load_central_config
from central.ingest import Ingestor, Message
from central.inversion.command import invert
from central.inversion.config import StoreSource
from central.inversion.observations import ObsTable, format_time, write_csv
from central.inversion.store_source import afternoon_hours, measurement_sigma, target_sigma
from central.inversion.twin import TwinSpec, make_twin, write_twin_inputs
from central.store import open_store
from ghgnet.wire import MinuteWire, SpeciesStats, TargetWire, encode_batch, topic_for

NOW = datetime(2024, 7, 10, tzinfo=UTC)
SPEC = TwinSpec(ny=8, nx=8, start="2024-07-01", days=2, n_stations=2, utc_offset_hours=8,
                measurement_sigma=0.1, background_sigma=0.1, length_km=3.0, tau_days=2.0, seed=3)
TARGET_BIASES = [0.3, -0.4, 0.5]  # t01's recent target runs, ppm


def _dt(t: np.datetime64) -> datetime:
    return datetime.fromtimestamp(int(np.datetime64(t, "s").astype(np.int64)), UTC)


class Station:
    """One station's outgoing records with its own monotonic seq."""

    def __init__(self, sid: str) -> None:
        self.sid, self.seq, self.minutes, self.targets = sid, 0, [], []

    def minute(self, t: datetime, value: float, stream: str = "inlet:100m", flag: str = "U") -> None:
        self.seq += 1
        self.minutes.append(MinuteWire(
            seq=self.seq, time=t, device="g2401", stream=stream,
            species={"co2": SpeciesStats(mean=value, std=0.0, n=50, raw_mean=value, cal_mean=value)},
            flag=flag, reasons=[] if flag == "U" else ["flush"], n_total=60))

    def target(self, t: datetime, bias: float) -> None:
        self.seq += 1
        self.targets.append(TargetWire(
            seq=self.seq, record_type="target", id=f"{self.sid}-tgt-{self.seq}", time=t, cylinder="TGT-1",
            measured={"co2": 410.0 + bias}, assigned={"co2": 410.0}, bias={"co2": bias},
            within_goal={"co2": abs(bias) <= 0.1}))

    def messages(self) -> list[Message]:
        out = []
        for kind, recs in (("minute", self.minutes), ("calibration", self.targets)):
            for lo in range(0, len(recs), 200):
                out.append(Message(topic_for(self.sid, kind), encode_batch(self.sid, kind, recs[lo:lo + 200], NOW)))
        return out


@dataclass
class World:
    twin: object
    folder: Path
    central_config: Path
    excluded: set[tuple[str, int]]  # (station, UTC hour as epoch s) of afternoon hours that are not valid
    spike_hour: tuple[str, int]


CENTRAL_TOML = """
[storage]
backend = "sqlite"
path = "central.sqlite"

[aggregate]
enabled = false
min_minutes_per_hour = 4

[stations.t01]
timezone = "Asia/Shanghai"
latitude = {lat1}
longitude = {lon1}
role = "urban"

[stations.t02]
timezone = "Asia/Shanghai"
latitude = {lat2}
longitude = {lon2}
role = "urban"

[stations.bkg]
timezone = "Asia/Shanghai"
role = "background"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    folder = tmp_path_factory.mktemp("store_world")
    twin = make_twin(SPEC, keep_layers=True)
    # network station ids are lower case (the wire's rule); the twin names them T01, T02, BKG
    twin.table = ObsTable(twin.table.time, np.char.lower(twin.table.station), twin.table.value,
                          twin.table.uncertainty)
    twin.station_ids, twin.background_station = [s.lower() for s in twin.station_ids], "bkg"
    write_twin_inputs(twin, folder / "inputs")
    central_path = folder / "central.toml"
    central_path.write_text(CENTRAL_TOML.format(lat1=twin.station_lat[0], lon1=twin.station_lon[0],
                                                lat2=twin.station_lat[1], lon2=twin.station_lon[1]))
    central = load_central_config(central_path)

    table = twin.table
    value_at = {(str(s), int(np.datetime64(t, "s").astype(np.int64))): float(v)
                for s, t, v in zip(table.station, table.time, table.value)}
    afternoon = sorted({k[1] for k in value_at})
    flushed, sparse, manual_k, manual_o = (("t01", afternoon[1]), ("t02", afternoon[2]),
                                           ("t01", afternoon[6]), ("t02", afternoon[7]))
    spike_hour = ("t02", afternoon[3])
    start = datetime(2024, 7, 1, tzinfo=UTC)
    stations = {sid: Station(sid) for sid in ("t01", "t02", "bkg")}
    for sid, st in stations.items():
        for h in range(int(SPEC.days * 24)):
            hour = start + timedelta(hours=h)
            key = (sid, int(hour.timestamp()))
            value = value_at.get(key)
            if value is None:  # not an afternoon hour: a value the selection must never pick
                for minute in range(5):
                    st.minute(hour + timedelta(minutes=minute), 999.0)
                continue
            st.minute(hour + timedelta(minutes=59), value + 50.0, stream="inlet:10m")  # a lower inlet
            if key == flushed:
                for minute in range(5):
                    st.minute(hour + timedelta(minutes=minute), value + 7.0, flag="N")
            elif key == sparse:  # 2 valid minutes < min_minutes_per_hour: hourly flag N
                for minute in range(2):
                    st.minute(hour + timedelta(minutes=minute), value + 7.0)
            elif key == spike_hour:  # 30 minutes, one spike the hourly mean must leave out
                for minute in range(30):
                    st.minute(hour + timedelta(minutes=minute), value + (30.0 if minute == 15 else 0.0))
            else:
                for minute in range(5):
                    st.minute(hour + timedelta(minutes=minute), value)
    for days_before, bias in ((3, TARGET_BIASES[0]), (2, TARGET_BIASES[1]), (1, TARGET_BIASES[2]), (100, 5.0)):
        stations["t01"].target(start - timedelta(days=days_before), bias)  # the 100-day-old run is not recent
    for days_before in (1, 2):
        stations["bkg"].target(start - timedelta(days=days_before), 0.05)  # 2 runs < target_min_runs

    store = open_store("sqlite", path=folder / "central.sqlite")
    try:
        results = Ingestor(store, now=lambda: NOW).handle([m for st in stations.values() for m in st.messages()])
        assert all(r.outcome is not None and r.outcome.dead_lettered == 0 for r in results)
        for (sid, h), letter in ((manual_k, "K"), (manual_o, "O")):
            store.add_manual_flag(sid, _dt(np.datetime64(h, "s")), _dt(np.datetime64(h + 3600, "s")), letter,
                                  "checked on site", "tester", NOW)
        aggregate_all(store, central, lambda: NOW)
        spike = store.hourly("t02", _dt(np.datetime64(spike_hour[1], "s")),
                             _dt(np.datetime64(spike_hour[1] + 3600, "s")), "inlet:100m", "co2")[0]
        assert spike.n_spikes == 1 and spike.mean_all != pytest.approx(spike.mean)
        k_hour = store.hourly(*manual_k[:1], _dt(np.datetime64(manual_k[1], "s")),
                              _dt(np.datetime64(manual_k[1] + 3600, "s")), "inlet:100m", "co2")[0]
        assert k_hour.flag == "K"
    finally:
        store.close()
    return World(twin, folder, central_path, {flushed, sparse, manual_k}, spike_hour)


def inversion_toml(world: World, observations: str) -> str:
    return f"""
species = "CO2"
[period]
start = "2024-07-01T00:00:00Z"
days = {SPEC.days}
[prior]
file = "{world.folder / 'inputs' / 'prior.nc'}"
region_file = "{world.folder / 'inputs' / 'region.nc'}"
[footprints]
path = "{world.folder / 'inputs' / 'footprints.nc'}"
[covariance]
length_km = {SPEC.length_km}
tau_days = {SPEC.tau_days}
mismatch_ppm = {SPEC.mismatch_sigma}
{observations}
"""


def store_observations(world: World, from_targets: bool) -> str:
    return f"""
[observations]
source = "store"
[observations.store]
central_config = "{world.central_config}"
from_targets = {'true' if from_targets else 'false'}
measurement_ppm = 0.1
"""


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_store_source_selects_valid_afternoon_top_inlet_hours_and_matches_the_csv_path(world, tmp_path):
    config = tmp_path / "store.toml"
    config.write_text(inversion_toml(world, store_observations(world, from_targets=False)))
    out = tmp_path / "store_out"
    assert invert(config, out) == 0

    # the selection written for a rerun: afternoon hours only, invalid hours left out, top inlet
    rows = read_rows(out / "inputs" / "observations.csv")
    twin = world.twin.table
    expected = {(str(s), format_time(t)): float(v) for s, t, v in zip(twin.station, twin.time, twin.value)
                if (str(s), int(np.datetime64(t, "s").astype(np.int64))) not in world.excluded}
    got = {(r["station"], r["time_utc"]): float(r["value"]) for r in rows}
    assert set(got) == set(expected)
    assert len(got) == len(twin) - 3
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=2e-6), key  # spike-free: the spike hour too
    assert all(float(r["uncertainty"]) == pytest.approx(0.1) for r in rows)
    assert {r["stream"] for r in rows} == {"inlet:100m"}
    t01 = next(r for r in rows if r["station"] == "t01")
    assert float(t01["latitude"]) == pytest.approx(world.twin.station_lat[0])
    assert float(t01["intake_height_m"]) == 100.0

    summary = json.loads((out / "summary.json").read_text())
    obs = summary["observations"]
    assert obs["source"] == "store" and obs["background_stations"] == ["bkg"]  # role = "background"
    assert obs["used"] == len(expected) - sum(1 for s, _ in expected if s == "bkg")
    assert obs["used_by_station"] == {"t01": 10 - 2, "t02": 10 - 1}
    assert obs["stations"]["t01"]["hours"] == 48 and obs["stations"]["t01"]["afternoon"] == 8

    # the same observations given as a CSV (background subtracted the same way) give the same answer
    kept = np.array([(str(s), int(np.datetime64(t, "s").astype(np.int64))) not in world.excluded
                     for s, t in zip(twin.station, twin.time)])
    write_csv(tmp_path / "obs.csv", twin.select(kept))
    csv_config = tmp_path / "csv.toml"
    csv_config.write_text(inversion_toml(world, f"""
[observations]
file = "{tmp_path / 'obs.csv'}"
utc_offset_hours = 8
background_stations = ["bkg"]
"""))
    assert invert(csv_config, tmp_path / "csv_out") == 0
    reference = json.loads((tmp_path / "csv_out" / "summary.json").read_text())
    assert reference["observations"]["used"] == obs["used"]
    for a, b in zip(summary["totals"], reference["totals"]):
        assert a["posterior_Mt"] == pytest.approx(b["posterior_Mt"], rel=1e-4)
        assert a["posterior_sigma_Mt"] == pytest.approx(b["posterior_sigma_Mt"], rel=1e-9)
    assert summary["diagnostics"]["chi2_reduced"] == pytest.approx(reference["diagnostics"]["chi2_reduced"], rel=1e-3)


def test_target_biases_set_the_measurement_uncertainty_where_there_are_enough(world, tmp_path):
    runs = {}
    for from_targets in (False, True):
        config = tmp_path / f"targets_{from_targets}.toml"
        config.write_text(inversion_toml(world, store_observations(world, from_targets)))
        assert invert(config, tmp_path / f"out_{from_targets}") == 0
        runs[from_targets] = tmp_path / f"out_{from_targets}"
    rms = float(np.sqrt(np.mean(np.square(TARGET_BIASES))))
    rows = read_rows(runs[True] / "inputs" / "observations.csv")
    sigma = {r["station"]: {round(float(x["uncertainty"]), 6) for x in rows if x["station"] == r["station"]}
             for r in rows}
    assert sigma["t01"] == {round(rms, 6)}  # repeatability is 0: the minutes had std 0
    assert sigma["t02"] == {0.1} and sigma["bkg"] == {0.1}  # no runs / 2 runs < target_min_runs
    stations = json.loads((runs[True] / "summary.json").read_text())["observations"]["stations"]
    assert (stations["t01"]["measurement_source"], stations["t01"]["target_runs"]) == ("targets", 3)
    assert stations["t01"]["measurement_sigma_ppm"] == pytest.approx(rms)
    assert (stations["bkg"]["measurement_source"], stations["bkg"]["target_runs"]) == ("configured", 2)
    # a less precise station constrains less: the city total's posterior sigma grows
    with_targets = json.loads((runs[True] / "summary.json").read_text())["totals"][0]
    without = json.loads((runs[False] / "summary.json").read_text())["totals"][0]
    assert with_targets["posterior_sigma_Mt"] > without["posterior_sigma_Mt"]


def test_target_statistic_rule():
    b = np.array([0.2, 0.2, 0.2, np.nan])
    assert target_sigma(b, "rms", 3) == pytest.approx(0.2)  # a constant offset is all error
    assert target_sigma(b, "std", 3) == pytest.approx(0.0, abs=1e-15)  # ... or none of it
    assert target_sigma(b, "rms", 4) is None  # NaN does not count as a run
    src = StoreSource(central_config=Path("c.toml"), measurement_ppm=0.3, target_statistic="std")
    assert measurement_sigma(np.array([0.1, -0.1, 0.3]), src).sigma_ppm == pytest.approx(0.2)
    assert measurement_sigma(np.array([0.1]), src).source == "configured"
    off = StoreSource(central_config=Path("c.toml"), from_targets=False, measurement_ppm=0.3)
    assert measurement_sigma(np.array([0.1, -0.1, 0.3]), off).sigma_ppm == 0.3


def test_afternoon_window_is_local_per_station_across_daylight_saving():
    hours = np.array(["2024-03-30T10:00", "2024-03-30T11:00", "2024-03-30T15:00", "2024-03-30T16:00",
                      "2024-04-01T10:00", "2024-04-01T14:00", "2024-04-01T15:00"], dtype="datetime64[s]")
    # Paris: UTC+1 before 31 March, UTC+2 after; the window is 12:00-16:59 local
    assert afternoon_hours(hours, "Europe/Paris", 12, 16).tolist() == [False, True, True, False, True, True, False]
    assert afternoon_hours(hours, "UTC", 12, 16).tolist() == [False, False, True, True, False, True, True]


def test_store_errors_are_named(world, tmp_path, capsys):
    missing = tmp_path / "central.toml"
    missing.write_text('[storage]\nbackend = "sqlite"\npath = "nowhere.sqlite"\n')
    config = tmp_path / "missing.toml"
    config.write_text(inversion_toml(world, f"""
[observations]
source = "store"
[observations.store]
central_config = "{missing}"
"""))
    assert invert(config, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "storage.path: no central store at" in err and not (tmp_path / "nowhere.sqlite").exists()

    no_background = tmp_path / "central2.toml"
    no_background.write_text(f'[storage]\nbackend = "sqlite"\npath = "{world.folder / "central.sqlite"}"\n')
    config.write_text(inversion_toml(world, f"""
[observations]
source = "store"
[observations.store]
central_config = "{no_background}"
"""))
    assert invert(config, tmp_path / "out") == 2
    assert 'no station has role = "background"' in capsys.readouterr().err

    config.write_text(inversion_toml(world, """
[observations]
source = "store"
utc_offset_hours = 8
"""))
    assert invert(config, tmp_path / "out") == 2
    assert "observations: Value error, source \"store\" needs [observations.store]" in capsys.readouterr().err
    config.write_text(inversion_toml(world, store_observations(world, True).replace('source = "store"', 'source = "store"\nutc_offset_hours = 8')))
    assert invert(config, tmp_path / "out") == 2
    assert "uses each station's timezone from the central config" in capsys.readouterr().err
