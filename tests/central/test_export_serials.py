"""Exports carry the serial number of the instrument that measured each value: the registry's
device history walked back from the latest inventory."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from support.mqtt import minute

from central.export import write_minute_csv
from central.fleet.registry import serial_at, serials_over_time
from ghgnet.wire import EventWire, ParsedBatch, StatusMessage

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _ev(seq: int, at: datetime, kind: str, data: dict) -> EventWire:
    return EventWire(seq=seq, time=at, kind=kind, severity="info", message=kind, device="g2401", data=data)


SWAP = T0 + timedelta(minutes=3, seconds=30)
EVENTS = [_ev(100, T0, "inventory.device_added", {"driver": "picarro.g2401", "serial_number": "A1"}),
          _ev(101, SWAP, "inventory.device_changed",
              {"from": {"driver": "picarro.g2401", "serial_number": "A1"},
               "to": {"driver": "picarro.g2401", "serial_number": "B2"}})]


def test_serials_are_walked_back_from_the_current_inventory():
    events = [type("E", (), {"time": e.time, "seq": e.seq, "kind": e.kind, "device": e.device, "data": e.data})()
              for e in EVENTS]
    tl = serials_over_time({"g2401": "B2", "lgr": "L9"}, events)
    assert [serial_at(tl, "g2401", T0 + timedelta(minutes=m)) for m in (-1, 0, 3, 4)] == [None, "A1", "A1", "B2"]
    assert serial_at(tl, "lgr", T0) == "L9" and serial_at(tl, "nope", T0) is None
    # only the swap read (an export starting after the install): the serial before it is its "from"
    tl = serials_over_time({"g2401": "B2"}, events[1:])
    assert serial_at(tl, "g2401", T0 + timedelta(minutes=1)) == "A1"


def test_minute_csv_has_the_serial_of_each_minute(store):
    store.store_status(StatusMessage(station="st-a", state="up", time=T0, backlog=0, agent_version="t",
                                     interval_s=60.0, details={"inventory": {"devices": {
                                         "g2401": {"driver": "picarro.g2401", "serial_number": "B2"}}}}), T0)
    store.store_batch(ParsedBatch("st-a", "event", T0, EVENTS), T0)
    store.store_batch(ParsedBatch("st-a", "minute", T0, [minute(k, t0=T0) for k in (1, 2, 3, 4, 5)]), T0)
    out = io.StringIO()
    assert write_minute_csv(store, "st-a", T0, T0 + timedelta(hours=1), out) == 5
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["time_utc"][11:16], r["device"], r["serial"]) for r in rows] == [
        ("00:01", "g2401", "A1"), ("00:02", "g2401", "A1"), ("00:03", "g2401", "A1"), ("00:04", "g2401", "B2"),
        ("00:05", "g2401", "B2")]
    out = io.StringIO()  # an export of a later range: the swap before it is not read, the inventory says B2
    write_minute_csv(store, "st-a", T0 + timedelta(minutes=4), T0 + timedelta(hours=1), out)
    assert {r["serial"] for r in csv.DictReader(io.StringIO(out.getvalue()))} == {"B2"}
