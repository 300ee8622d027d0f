"""Time is sane (central/ingest.py): records and statuses stamped more than `future_tolerance_s`
beyond central's clock are dead-lettered (`time_in_future`), a record still acknowledged, a status
whole; nothing from the far future becomes the newest thing central holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from support.mqtt import event, minute

from central.ingest import Ingestor, Message
from central.store import BatchOutcome, DeadLetterOutcome, open_store
from ghgnet.wire import (
    CalibrationWire,
    FitWire,
    StandardWire,
    StatusMessage,
    encode_batch,
    encode_status,
)

NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)  # central's clock
STORE = "0123456789abcdef0123456789abcdef"
FAR = datetime(2999, 12, 31, 23, 0, tzinfo=UTC)  # within the wire's range, beyond any clock


@pytest.fixture
def store(tmp_path):
    s = open_store("sqlite", path=tmp_path / "central.sqlite")
    yield s
    s.close()


def ingest(store, *messages: tuple[str, bytes], tolerance_s: float = 3600.0):
    return [h.outcome for h in Ingestor(store, now=lambda: NOW, future_tolerance_s=tolerance_s).handle(
        [Message(f"ghg/v1/st-a/{kind}", payload) for kind, payload in messages])]


def minutes_at(*times: datetime) -> bytes:
    return encode_batch("st-a", "minute", [minute(i + 1, t0=t - timedelta(minutes=i + 1)) for i, t in enumerate(times)],
                        NOW, store=STORE)


def test_a_minute_beyond_the_tolerance_is_dead_lettered_and_acked_the_rest_stored(store):
    within = NOW + timedelta(minutes=59)
    (out,) = ingest(store, ("minute", minutes_at(NOW - timedelta(hours=1), within, FAR, NOW + timedelta(hours=2))))
    assert isinstance(out, BatchOutcome)
    assert (out.new, out.dead_lettered, out.ack_seqs) == (2, 2, [1, 2, 3, 4])
    assert store.latest_minute_time("st-a") == within  # the dashboard's window stays where the data is
    letters = sorted(store.dead_letters(), key=lambda d: d.seq)
    assert [(d.seq, d.reason_code, d.store) for d in letters] == [(3, "time_in_future", STORE),
                                                                 (4, "time_in_future", STORE)]
    assert "2999-12-31T23:00:00.000Z" in letters[0].reason and "2026-03-05T13:00:00.000Z" in letters[0].reason
    record = json.loads(letters[0].payload)
    assert record["seq"] == 3 and record["time"].startswith("2999-12-31T23:00:00")
    assert record["species"]["co2"]["cal_mean"] == 420.0
    # redelivered (its ack lost): acked again, dead-lettered once
    (again,) = ingest(store, ("minute", minutes_at(NOW - timedelta(hours=1), within, FAR, NOW + timedelta(hours=2))))
    assert (again.new, again.duplicate, again.dead_lettered, again.ack_seqs) == (0, 2, 0, [1, 2, 3, 4])


def test_the_tolerance_is_configurable(store):
    (out,) = ingest(store, ("minute", minutes_at(NOW + timedelta(minutes=2))), tolerance_s=60)
    assert (out.new, out.dead_lettered) == (0, 1)


def test_times_in_the_models_path_are_screened_too(store):
    """A batch with an invalid record takes the pydantic path: both refusals, each with its code."""
    doc = json.loads(minutes_at(NOW, FAR, NOW - timedelta(minutes=5)))
    doc["records"][2]["flag"] = "lower"
    (out,) = ingest(store, ("minute", json.dumps(doc).encode()))
    assert (out.new, out.dead_lettered, sorted(out.ack_seqs)) == (1, 2, [1, 2, 3])
    assert {(d.seq, d.reason_code) for d in store.dead_letters()} == {(2, "time_in_future"), (3, "invalid_record")}


def test_events_and_calibrations_stamped_in_the_future_are_refused(store):
    late = event(2, t0=FAR - timedelta(minutes=2))
    cal = CalibrationWire(  # starts now, claims to end in 2999
        seq=5, record_type="calibration", id="cal-5", time_start=NOW, time_end=FAR,
        standards=[StandardWire(cylinder="CAL-A", measured={"co2": 380.1}, assigned={"co2": 380.0},
                                scale={"co2": "WMO-CO2-X2019"})],
        fits={"co2": FitWire(coefficients=[0.1, 0.999], residuals=[0.01], r2=0.9999, rmse=0.01, n=3)})
    outs = ingest(store, ("event", encode_batch("st-a", "event", [event(1), late], NOW)),
                  ("calibration", encode_batch("st-a", "calibration", [cal], NOW)))
    assert [(o.kind, o.new, o.dead_lettered, o.ack_seqs) for o in outs] == [
        ("event", 1, 1, [1, 2]), ("calibration", 0, 1, [5])]
    assert store.calibrations("st-a", NOW - timedelta(days=1), FAR) == []
    assert {d.reason_code for d in store.dead_letters()} == {"time_in_future"}


def test_a_status_from_the_future_is_dead_lettered_whole_and_freezes_nothing(store):
    def status(state: str, t: datetime) -> bytes:
        return encode_status(StatusMessage(station="st-a", state=state, time=t, interval_s=30.0))

    ingest(store, ("status", status("up", NOW - timedelta(seconds=1))))
    (out,) = ingest(store, ("status", status("up", FAR)))
    assert isinstance(out, DeadLetterOutcome) and out.stored
    (letter,) = store.dead_letters()
    assert (letter.reason_code, letter.seq, letter.topic) == ("time_in_future", None, "ghg/v1/st-a/status")
    assert json.loads(letter.payload)["time"].startswith("2999")
    assert store.stations()[0].status.time == NOW - timedelta(seconds=1)
    # the station goes down and comes back: its statuses are taken as they were before
    ingest(store, ("status", status("down", NOW - timedelta(hours=1))))
    assert store.stations()[0].status.state == "down"
    (up,) = ingest(store, ("status", status("up", NOW)))
    assert up.stored and store.stations()[0].status.state == "up"
