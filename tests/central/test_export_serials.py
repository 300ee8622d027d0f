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


def test_hourly_exports_carry_the_serials_of_the_instruments_that_made_each_hour(store, tmp_path):
    """The ICOS-like CSV's InstrumentSerial and the netCDF's instrument_serial: per hour, the serial
    of each analyzer whose minutes of that species made it; an hour with a swap in it names both."""
    import xarray as xr

    from central.aggregation.worker import aggregate_all
    from central.config import CentralConfig
    from central.export import hourly_rows_for_export, write_icos_csv, write_obspack_nc
    from central.fleet.serials import hourly_serials
    from ghgnet.wire import SpeciesStats

    swap = T0 + timedelta(hours=1, minutes=30)
    events = [EVENTS[0], _ev(101, swap, "inventory.device_changed",
                             {"from": {"driver": "picarro.g2401", "serial_number": "A1"},
                              "to": {"driver": "picarro.g2401", "serial_number": "B2"}})]
    store.store_status(StatusMessage(station="st-a", state="up", time=T0, backlog=0, agent_version="t",
                                     interval_s=60.0, details={"inventory": {"devices": {
                                         "g2401": {"driver": "picarro.g2401", "serial_number": "B2"},
                                         "lgr": {"driver": "lgr.mgga", "serial_number": "L9"}}}}), T0)
    store.store_batch(ParsedBatch("st-a", "event", T0, events), T0)
    n2o = {"n2o": SpeciesStats(mean=335.0, std=0.1, n=55, raw_mean=334.0, cal_mean=335.0)}
    minutes = [minute(k, t0=T0 - timedelta(minutes=1)) for k in range(1, 181)]
    minutes += [minute(k, t0=T0 - timedelta(minutes=1)).model_copy(update={"seq": 1000 + k, "device": "lgr",
                                                                           "species": n2o})
                for k in range(121, 181)]
    store.store_batch(ParsedBatch("st-a", "minute", T0, minutes), T0)
    config = CentralConfig.model_validate({"stations": {"st-a": {}}})
    aggregate_all(store, config, lambda: T0 + timedelta(hours=4))
    end = T0 + timedelta(hours=3)

    rows = hourly_rows_for_export(store, "st-a", "co2", T0, end)
    assert [r.hour for r in rows] == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    serials = hourly_serials(store, "st-a", "co2", rows)
    assert serials == ["A1", "A1 | B2", "B2"]
    n2o_rows = hourly_rows_for_export(store, "st-a", "n2o", T0, end)
    assert hourly_serials(store, "st-a", "n2o", n2o_rows) == ["L9"]

    out = io.StringIO()
    write_icos_csv(rows, config, "st-a", "co2", out, serials=serials)
    table = list(csv.DictReader((line for line in io.StringIO(out.getvalue()) if not line.startswith("#")),
                                delimiter=";"))
    assert [r["InstrumentSerial"] for r in table] == ["A1", "A1 | B2", "B2"]
    write_obspack_nc(rows, config, "st-a", "co2", tmp_path / "co2.nc", serials=serials)
    with xr.open_dataset(tmp_path / "co2.nc") as ds:
        assert [str(x) for x in ds["instrument_serial"].values] == ["A1", "A1 | B2", "B2"]
    out = io.StringIO()  # without serials (a caller that has none): the column says unknown
    write_icos_csv(rows, config, "st-a", "co2", out)
    assert out.getvalue().splitlines()[-1].endswith(";-")
