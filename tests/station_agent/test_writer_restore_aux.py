"""The writer's restart recovery rebuilds the open minutes of the analyzers only: an auxiliary
device's raw readings (stream "aux", e.g. met-1's T/RH/P) feed the analyzers' minute means
(AuxiliaryMinutes, counted again by Agent._restore_auxiliary), never minutes of their own, as on
the live path (StoreWriter._handle)."""

from __future__ import annotations

import io
from datetime import timedelta

from drivers.reading import Reading
from ghgnet.clock import ScaledClock
from ghgnet.logs import configure_logging, get_logger
from ghgnet.processing.minute_record import MinuteLimits, minute_record
from ghgnet.timeutil import minute_start
from station_agent.processing.minute_bins import MinuteAssembler, MinuteBin
from station_agent.storage.store import StationStore
from station_agent.storage.writer import StoreWriter


def test_restart_recovery_makes_no_minutes_of_an_auxiliary_device(tmp_path):
    path = tmp_path / "s.sqlite"
    clock = ScaledClock()
    first = minute_start(clock.now() - timedelta(minutes=10))
    readings = []
    for i in range(3 * 12):  # three minutes, a reading every 5 s from each device
        t = first + timedelta(seconds=5 * i)
        readings.append(Reading(time=t, device="picarro-1", values={"co2_dry": 420.0 + i * 0.01, "h2o": 1.0},
                                stream="inlet:top"))
        readings.append(Reading(time=t, device="met-1", values={"temperature": 10.0, "humidity": 80.0},
                                stream="aux"))
    store = StationStore(path)
    store.insert_raw(readings)
    store.close()

    made: list[MinuteBin] = []

    def make_minute(b: MinuteBin):
        made.append(b)
        times, values, ok, flushing = b.arrays()
        return minute_record(b.minute, b.device, b.stream, times, values, ok, flushing, MinuteLimits(min_samples=1))

    configure_logging("t", fmt="json", stream=io.StringIO())
    w = StoreWriter(path, clock, MinuteAssembler(20), make_minute=make_minute, log=get_logger(), state=dict,
                    raw_retention=timedelta(days=3650))
    w.start()
    try:
        pending = w.call_sync(lambda store: sorted({k[0] for k in w.assembler._bins}))
    finally:
        w.stop()
    # the analyzer's first two minutes closed (the third is open until the clock closes it)
    assert [(b.device, b.minute) for b in made] == [("picarro-1", first), ("picarro-1", first + timedelta(minutes=1))]
    assert pending == ["picarro-1"]
    store = StationStore(path, read_only=True)
    try:
        stored = list(store.minute_rows(first - timedelta(hours=1), first + timedelta(hours=1)))
    finally:
        store.close()
    assert {m["device"] for m in stored} == {"picarro-1"} and len(stored) == 2
