"""A flux site through the station's real store writer: the simulated sonic's and LI-7500's bytes,
read by their drivers at 10 Hz, go to compressed half-hour blocks (not raw rows), the closed half
hour is processed on the recorder's own thread and its flux record lands in the outbox."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from drivers.gill.windmaster import WindMaster
from drivers.licor.li7x00 import LI7500
from ghgnet.clock import ManualClock
from ghgnet.logs import get_logger
from simulators.flux_site import FluxSiteSpec, simulate_half_hour
from simulators.gill.windmaster import WindMasterStream
from simulators.licor.li7x00 import Li7x00Stream
from station_agent.acquisition.flux_recorder import FluxRecorder, FluxStationConfig
from station_agent.processing.minute_bins import MinuteAssembler
from station_agent.storage.store import StationStore
from station_agent.storage.writer import StoreWriter

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FS = 10.0


class Line:
    """The serial line between a simulated instrument and its driver: what arrived since the last read."""

    url = "feed://"
    is_open = True

    def __init__(self) -> None:
        self.pending = b""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read_available(self, max_bytes: int = 1 << 20) -> bytes:
        data, self.pending = self.pending, b""
        return data


@pytest.mark.parametrize("nonstationary", [False, True], ids=["good", "nonstationary"])
def test_the_writer_keeps_blocks_and_the_recorder_stores_the_half_hours_flux(tmp_path, nonstationary):
    spec = FluxSiteSpec(fs_hz=FS, nonstationary=nonstationary)
    clock = ManualClock(START)
    streams = {"sonic": WindMasterStream(clock, spec, seed=2), "irga": Li7x00Stream(clock, spec, seed=2)}
    lines = {k: Line() for k in streams}
    drivers = {"sonic": WindMaster(WindMaster.Config(id="sonic", url="loop://", output_rate_hz=FS), lines["sonic"]),
               "irga": LI7500(LI7500.Config(id="irga", url="loop://", output_rate_hz=FS), lines["irga"])}
    clients = {k: s.attach() for k, s in streams.items()}
    for d in drivers.values():
        d.open()
        d.now = clock.now
    log = get_logger(component="test")
    writer = StoreWriter(tmp_path / "station.sqlite", clock, MinuteAssembler(5.0), lambda b: None, log, dict,
                         timedelta(days=1), maxsize=4096)
    recorder = FluxRecorder(FluxStationConfig(sonic="sonic", analyzer="irga", rate_hz=FS), writer.submit_call,
                            clock.now, log)
    writer.highrate = recorder
    writer.start()
    recorder.start()
    sent = 0
    try:
        for _ in range(1810):
            clock.advance(1.0)
            readings = []
            for k, s in streams.items():
                chunk = s.take(clients[k])
                sent += chunk.count(b"\n")
                lines[k].pending += chunk
                readings += drivers[k].poll().readings
            writer.submit_readings(readings)
        deadline = time.monotonic() + 30
        while recorder.fluxes < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        recorder.stop()
        writer.stop()
    store = StationStore(tmp_path / "station.sqlite", read_only=True)
    try:
        blocks = list(store.highrate_blocks(START, START + timedelta(hours=1)))
        assert sum(b.n for b in blocks) == sent == 2 * 18100  # every record, none as a raw row
        assert store.conn.execute("SELECT COUNT(*) FROM raw").fetchone()[0] == 0
        (flux,) = store.flux_rows()
        assert store.outbox_seqs()["flux"] == [store.conn.execute("SELECT seq FROM flux").fetchone()[0]]
    finally:
        store.close()
    truth = simulate_half_hour(spec, 2, START).truth
    assert flux["start"] == "2026-06-01T12:00:00Z"
    if nonstationary:  # bad conditions are flagged (Mauder and Foken 2): not for budgets
        assert flux["flag_co2"] == 2 and flux["flag_h"] == 2
        return
    assert flux["co2_flux_umol_m2_s"] == pytest.approx(truth.co2_flux_umol_m2_s, rel=0.05)
    assert flux["h_w_m2"] == pytest.approx(truth.h_w_m2, rel=0.05)
    assert flux["flag_co2"] < 2 and flux["flag_h"] < 2
