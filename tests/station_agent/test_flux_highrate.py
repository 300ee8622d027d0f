"""A flux site's half hour from the instruments' bytes to the stored flux record: the simulated
WindMaster and LI-7500 streams (10 Hz, one clock) read by their drivers, gathered per half hour,
stored as compressed blocks (every record sent is stored), aligned, processed, and queued for
central as a `flux` record, whose fluxes match the simulator's truth."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from support.station import station_toml

from drivers.campbell.toa5 import read_toa5
from drivers.gill.windmaster import WindMaster
from drivers.licor.li7x00 import LI7500
from drivers.reading import Reading
from ghgnet.clock import ManualClock
from simulators.flux_site import FluxSiteSpec, simulate_half_hour
from simulators.gill.windmaster import WindMasterStream
from simulators.licor.li7x00 import Li7x00Stream
from station_agent.acquisition.highrate import PeriodAccumulator, aligned_columns, block_of, period_start
from station_agent.processing.flux import FluxSettings, block_from_columns, process_half_hour
from station_agent.storage.highrate_block import BlockError, HighRateBlock, decode_block, encode_block
from station_agent.storage.store import StationStore

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FS = 10.0
NAMES = {"u": ("sonic", "u"), "v": ("sonic", "v"), "w": ("sonic", "w"), "ts_c": ("sonic", "sonic_temp"),
         "co2": ("gas", "co2_density"), "h2o": ("gas", "h2o_density"), "pressure_hpa": ("gas", "pressure")}


class Line:
    """The serial line between a simulated instrument and its driver: what arrived since the last read."""

    url = "feed://"

    def __init__(self) -> None:
        self.pending = b""

    def open(self) -> None: ...

    def close(self) -> None: ...

    @property
    def is_open(self) -> bool:
        return True

    def read_available(self, max_bytes: int = 1 << 20) -> bytes:
        data, self.pending = self.pending, b""
        return data


def test_a_half_hour_goes_from_the_instruments_bytes_to_a_stored_flux_record(tmp_path):
    spec = FluxSiteSpec(fs_hz=FS, dropout_fraction=0.002, spike_fraction=0.0002)
    clock = ManualClock(START)
    streams = {"sonic": WindMasterStream(clock, spec, seed=9), "irga": Li7x00Stream(clock, spec, seed=9)}
    lines = {k: Line() for k in streams}
    drivers = {"sonic": WindMaster(WindMaster.Config(id="sonic", url="loop://", output_rate_hz=FS), lines["sonic"]),
               "irga": LI7500(LI7500.Config(id="irga", url="loop://", output_rate_hz=FS), lines["irga"])}
    clients = {k: s.attach() for k, s in streams.items()}
    for d in drivers.values():
        d.open()
        d.now = clock.now
    acc = PeriodAccumulator(["sonic", "irga"], FS)
    store = StationStore(tmp_path / "station.sqlite")
    sent = {k: 0 for k in streams}
    problems = []
    for _ in range(1802):  # one poll a second, past the end of the half hour
        clock.advance(1.0)
        readings = []
        for k, s in streams.items():
            chunk = s.take(clients[k])
            sent[k] += chunk.count(b"\n")
            lines[k].pending += chunk
            result = drivers[k].poll()
            problems += result.problems
            readings += result.readings
        for block in acc.add(readings):
            store.put_highrate_block(block)
    for block in acc.close():
        store.put_highrate_block(block)
    assert not problems

    blocks = list(store.highrate_blocks(START - timedelta(hours=1), START + timedelta(hours=1)))
    stored = {k: sum(b.n for b in blocks if b.device == k) for k in streams}
    assert stored == sent and sent["sonic"] == 18020  # nothing lost at 10 Hz

    (sonic,) = (b for b in blocks if b.start == START and b.device == "sonic")
    (irga,) = (b for b in blocks if b.start == START and b.device == "irga")
    cols = aligned_columns(sonic, irga, 1800.0, NAMES)
    cols["ts"] = cols.pop("ts_c") + 273.15
    cols["pressure_pa"] = cols.pop("pressure_hpa") * 100.0
    rec = process_half_hour(block_from_columns(START, FS, cols), FluxSettings(path="open"))
    truth = simulate_half_hour(spec, 9, START).truth
    assert rec.co2_flux_umol_m2_s == pytest.approx(truth.co2_flux_umol_m2_s, rel=0.05)
    assert rec.h_w_m2 == pytest.approx(truth.h_w_m2, rel=0.05)
    assert rec.flag_co2 < 2 and rec.flag_h < 2

    seq = store.insert_flux(rec.wire_dict(), clock.now())
    assert seq is not None and store.insert_flux(rec.wire_dict(), clock.now()) is None  # one record a period
    assert store.outbox_seqs()["flux"] == [seq] and store.flux_rows()[0]["start"] == "2026-06-01T12:00:00Z"
    assert store.purge_highrate(START + timedelta(minutes=30)) == 2
    store.close()


def test_a_block_round_trips_exactly_and_a_damaged_one_is_named():
    block = HighRateBlock("sonic", START, 20.0, np.arange(5, dtype=np.int64) * 50,
                          {"u": np.array([1.0, np.nan, -2.5, 1e-9, 3.0]), "status_ok": np.ones(5)})
    names, data = encode_block(block)
    back = decode_block("sonic", START, 20.0, 5, names, data)
    assert names == "u,status_ok" and np.array_equal(back.time_ms, block.time_ms)
    np.testing.assert_array_equal(back.columns["u"], block.columns["u"])
    with pytest.raises(BlockError, match="sonic 2026-06-01T12:00:00\\+00:00: 120 bytes, 6 records of 2 columns need 144"):
        decode_block("sonic", START, 20.0, 6, names, data)


def test_periods_are_aligned_on_the_clock():
    assert period_start(datetime(2026, 6, 1, 12, 29, 59, 900000, tzinfo=UTC), 1800) == START
    assert period_start(datetime(2026, 6, 1, 12, 30, tzinfo=UTC), 1800) == START + timedelta(minutes=30)


def test_a_silent_analyzer_does_not_hold_the_sonics_period_open():
    acc = PeriodAccumulator(["sonic", "irga"], FS)

    def at(minutes: float) -> list[Reading]:
        return [Reading(START + timedelta(minutes=minutes), "sonic", {"w": 0.1})]

    assert acc.add(at(1)) == [] and acc.add(at(31)) == []  # the analyzer may still send 12:00-12:30
    (block,) = acc.add(at(61))  # two periods on: 12:00 closes without it
    assert (block.device, block.start, block.n) == ("sonic", START, 1)
    assert [b.start for b in acc.close()] == [START + timedelta(minutes=30), START + timedelta(minutes=60)]


def test_station_agent_exports_a_devices_highrate_records_as_toa5(tmp_path):
    config = station_toml(tmp_path, {"instruments": {}})
    store = StationStore(tmp_path / "station.sqlite")
    readings = [Reading(START + timedelta(seconds=i / 20), "sonic", {"w": i / 100, "sonic_temp": 20.0}, status_ok=i != 3)
                for i in range(40)]
    store.put_highrate_block(block_of("sonic", START, 20.0, readings))
    store.close()
    out = tmp_path / "sonic.dat"
    bin_dir = Path(sys.executable).parent
    run = subprocess.run([bin_dir / "station-agent", "export", "--config", config, "--from", "2026-06-01T00:00:00Z",
                          "--to", "2026-06-02T00:00:00Z", "--level", "highrate", "--format", "toa5",
                          "--device", "sonic", "--out", out], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    table = read_toa5(out)
    assert table.names == ["w", "sonic_temp", "status_ok"] and table.units[:2] == ["m/s", "degC"]
    np.testing.assert_allclose(table.columns["w"], np.arange(40) / 100)
    assert table.columns["status_ok"][3] == 0 and table.time[1] - table.time[0] == np.timedelta64(50, "ms")
    usage = subprocess.run([bin_dir / "station-agent", "export", "--config", config, "--from", "2026-06-01",
                            "--to", "2026-06-02", "--level", "highrate"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "needs --format toa5, --device and --out" in usage.stderr


def test_a_period_stored_at_a_stop_is_completed_not_replaced_after_a_restart(tmp_path):
    store = StationStore(tmp_path / "station.sqlite")
    before = [Reading(START + timedelta(seconds=i / 10), "sonic", {"w": float(i)}) for i in range(5)]
    after = [Reading(START + timedelta(seconds=60 + i / 10), "sonic", {"w": float(100 + i), "u": 1.0}) for i in range(3)]
    store.put_highrate_block(block_of("sonic", START, 10.0, before))
    merged = store.put_highrate_block(block_of("sonic", START, 10.0, after))
    (stored,) = store.highrate_blocks(START, START + timedelta(minutes=30))
    store.close()
    assert stored.n == merged.n == 8 and list(stored.time_ms) == [0, 100, 200, 300, 400, 60000, 60100, 60200]
    assert list(stored.columns["w"]) == [0, 1, 2, 3, 4, 100, 101, 102]
    assert np.isnan(stored.columns["u"][:5]).all() and list(stored.columns["u"][5:]) == [1.0, 1.0, 1.0]
