"""The receiver against a real mosquitto, with its decoding process: a reinstalled station (new
store, seqs from 1) is stored and acked under its new store, a conflicting copy is acked, dead-
lettered and shown to operators (`central-receiver status`), and what is stamped beyond central's
clock is refused; `central-receiver run` takes the station's clock options."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.central import central_config
from support.mqtt import TestStation, minute
from support.wait import wait_until
from typer.testing import CliRunner

from central.cli import app
from central.receiver import Receiver
from central.store import open_store
from ghgnet.clock import ScaledClock
from ghgnet.wire import StatusMessage, encode_batch, encode_status, parse_ack

SENT = datetime(2026, 3, 2, tzinfo=UTC)
OLD = "0123456789abcdef0123456789abcdef"
NEW = "fedcba9876543210fedcba9876543210"


def acks(station: TestStation) -> list[tuple[str | None, list[tuple[int, int]]]]:
    return [(a.store, a.acked) for a in (parse_ack("ghg/v1/st-a/ack", p) for p in list(station.ack_messages))]


def test_a_reinstalled_station_and_a_conflicting_copy_through_the_receiver(mosquitto, tmp_path: Path,
                                                                          start_receiver):
    db = tmp_path / "central.sqlite"
    config = central_config(mosquitto, db)
    assert config.ingest.decode_process
    receiver = start_receiver(config)
    station = TestStation(mosquitto, "st-a")
    try:
        station.publish("minute", encode_batch("st-a", "minute", [minute(s) for s in (1, 2, 3)], SENT, store=OLD))
        wait_until(lambda: acks(station) == [(OLD, [(1, 3)])], 10, message="the old store's ack")
        # the disk replaced: a new store from seq 1, other minutes
        later = [minute(s, t0=SENT) for s in (1, 2)]
        station.publish("minute", encode_batch("st-a", "minute", later, SENT, store=NEW))
        wait_until(lambda: acks(station)[1:] == [(NEW, [(1, 2)])], 10, message="the new store's ack")
        # the old store's seq 2 again, other content: acked all the same
        station.publish("minute", encode_batch("st-a", "minute", [minute(2, co2=300.0)], SENT, store=OLD))
        wait_until(lambda: acks(station)[2:] == [(OLD, [(2, 2)])], 10, message="the conflict's ack")
        wait_until(lambda: receiver.stats["acks_confirmed"] >= 3, 10, message="acks confirmed")
    finally:
        station.close()
    reader = open_store("sqlite", path=db)
    try:
        assert reader.held_seqs("st-a", OLD) == [1, 2, 3] and reader.held_seqs("st-a", NEW) == [1, 2]
        (letter,) = reader.dead_letters()
        assert (letter.reason_code, letter.store, letter.seq) == ("seq_conflict", OLD, 2)
    finally:
        reader.close()
    toml = tmp_path / "central.toml"
    toml.write_text(f'[storage]\nbackend = "sqlite"\npath = "{db}"\n')
    shown = CliRunner().invoke(app, ["status", "--config", str(toml), "--json"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    (alarm,) = doc["alarms"]["recent"]
    assert (alarm["station"], alarm["store"], alarm["kind"], alarm["data"]["seqs"]) == ("st-a", OLD, "seq_conflict", [2])
    (row,) = doc["stations"]
    assert (row["alarms"], row["store"], row["last_alarm"]["kind"]) == (1, OLD, "seq_conflict")
    assert doc["dead_letters"]["recent"][0]["store"] == OLD
    table = CliRunner().invoke(app, ["status", "--config", str(toml)])
    assert table.exit_code == 0 and "alarms: 1" in table.stdout and "[seq_conflict]" in table.stdout


def test_the_receiver_on_a_simulated_clock_refuses_only_what_is_beyond_it(mosquitto, tmp_path: Path,
                                                                        start_receiver):
    """Central on the station's simulated clock (an hour of it a real second, started a day ahead):
    records of that simulated day are taken, records beyond the tolerance refused."""
    clock = ScaledClock(speed=3600.0, start=datetime.now(UTC) + timedelta(days=1))
    db = tmp_path / "central.sqlite"
    config = central_config(mosquitto, db, ingest={"future_tolerance_s": 6 * 3600.0})
    receiver = Receiver(config, now=clock.now).start()
    station = TestStation(mosquitto, "st-a")
    try:
        assert receiver.subscribed.wait(10)
        now = clock.now()
        records = [minute(1, t0=now - timedelta(minutes=1)), minute(2, t0=now + timedelta(days=2))]
        station.publish("minute", encode_batch("st-a", "minute", records, now, store=OLD))
        station.publish("status", encode_status(StatusMessage(station="st-a", state="up", time=now + timedelta(days=3))))
        station.wait_acked([1, 2])
        wait_until(lambda: receiver.stats["messages_handled"] >= 2, 10, message="both messages handled")
    finally:
        station.close()
        receiver.stop()
    reader = open_store("sqlite", path=db)
    try:
        assert reader.held_seqs("st-a", OLD) == [1]
        assert sorted((d.seq or 0, d.reason_code) for d in reader.dead_letters()) == [
            (0, "time_in_future"), (2, "time_in_future")]
        assert reader.stations()[0].status is None
    finally:
        reader.close()


def test_run_refuses_a_clock_speed_that_is_not_a_positive_number(tmp_path: Path):
    for speed in ("0", "-2", "nan", "inf"):
        r = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "none.toml"), "--speed", speed])
        assert r.exit_code == 2 and "--speed must be a finite number > 0" in r.stderr, (speed, r.output)
    r = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "none.toml"), "--start", "yesterday"])
    assert r.exit_code == 2 and "--start: 'yesterday' is not an ISO 8601 time" in r.stderr
