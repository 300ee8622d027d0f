"""What a station and central hold, read by tests through the stores' own read methods: the ones
`station-agent records` and `central-receiver records` print (simulators.network runs those
commands; tests that poll read in process, which costs no interpreter start per look).

Records come as {kind: {seq: identity}} (`simulators.network.identities`), so the two sides
compare seq by seq. A database not made yet holds nothing.

`fill_station` writes a station database of every record kind through the station's store, and
`forward_outbox` hands its outbox to central's ingest as the forwarder's batches, for tests of
what the two `records` commands print.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from central.ingest import Ingestor, Message
from central.store import BatchOutcome, CentralStore, open_store
from ghgnet.records import Event, MinuteRecord, SpeciesMinute
from ghgnet.wire import BatchEncoder, topic_for
from simulators.network import identities
from station_agent.storage.store import StationStore

Records = dict[str, dict[int, tuple]]


def _station(db: Path) -> StationStore | None:
    """The station database read-only; None before the writer has made its tables."""
    if not Path(db).exists():
        return None
    store = StationStore(db, read_only=True)
    if store.schema_version() == 0:
        store.close()
        return None
    return store


def station_records(db: Path) -> Records:
    """Every record the station produced (its own tables), by kind and seq."""
    store = _station(db)
    if store is None:
        return identities({})
    with closing(store):
        return identities(store.record_identities())


def outbox_size(db: Path) -> int:
    """Records in the station's outbox (not yet acknowledged by central)."""
    store = _station(db)
    if store is None:
        return 0
    with closing(store):
        return store.outbox_stats()["backlog"]


def station_event_kinds(db: Path) -> list[str]:
    """The kinds of the station's events, oldest first."""
    store = _station(db)
    if store is None:
        return []
    with closing(store):
        return [e["kind"] for e in reversed(store.event_rows(1_000_000))]


def agent_forwarder_stats(db: Path) -> dict[str, Any]:
    """The forwarder's counters from the agent's last heartbeat (stored again at its stop)."""
    store = _station(db)
    if store is None:
        return {}
    with closing(store):
        state = store.get_state("agent")
    return (state[0].get("forwarder") or {}) if state else {}


def central_records(where: Path | CentralStore, station: str) -> Records:
    """Every record central holds of `station`, by kind and seq (a SQLite file not made yet: none)."""
    if not isinstance(where, Path):
        return identities(where.record_identities(station))
    if not where.exists():
        return identities({})
    with closing(open_store("sqlite", path=where)) as store:
        return identities(store.record_identities(station))


def central_minute_count(db: Path, station: str, device: str | None = None) -> int:
    """Minute records central holds of `station` (of one device when given)."""
    if not db.exists():
        return 0
    with closing(open_store("sqlite", path=db)) as store:
        return store.minute_count(station, device)


def central_status(db: Path, station: str) -> tuple[str, int, float | None] | None:
    """The station's status as central keeps it: (state, backlog, interval_s); None before any."""
    if not db.exists():
        return None
    with closing(open_store("sqlite", path=db)) as store:
        status = next((s.status for s in store.stations() if s.station == station), None)
    return None if status is None else (status.state, status.backlog, status.interval_s)


T0 = datetime(2026, 3, 1, tzinfo=UTC)
CALIBRATION = {
    "record_type": "calibration", "id": "cal-picarro-1-20260301T0000Z",
    "time_start": "2026-03-01T00:00:00.000Z", "time_end": "2026-03-01T00:40:00.000Z",
    "standards": [{"cylinder": c, "measured": {"co2": v + 0.2, "ch4": 1800.0 + v},
                   "assigned": {"co2": v, "ch4": 1800.0 + v},
                   "scale": {"co2": "WMO-CO2-X2019", "ch4": "WMO-CH4-X2004A"}}
                  for c, v in (("CAL-1", 380.0), ("CAL-2", 420.0), ("CAL-3", 460.0))],
    "fits": {
        "ch4": {"coefficients": [0.5, 0.999], "residuals": [0.1, -0.2, 0.1], "r2": 0.99999, "rmse": 0.1633, "n": 3},
        "co2": {"coefficients": [-0.2, 1.0], "residuals": [0.01, -0.02, 0.01], "r2": 0.99999, "rmse": 0.0163, "n": 3},
    },
}
"""A calibration result in its wire form (as station_agent/storage/calibration_results.py makes one)."""
TARGET = {
    "record_type": "target", "id": "tgt-picarro-1-TGT-1-20260301T0000Z", "time": "2026-03-01T00:41:00.000Z",
    "cylinder": "TGT-1", "measured": {"co2": 410.05, "ch4": 1950.9}, "assigned": {"co2": 410.0, "ch4": 1948.0},
    "bias": {"co2": 0.05, "ch4": 2.9}, "within_goal": {"co2": True, "ch4": False},
}


def fill_station(db: Path, minutes: int = 6) -> dict[str, list[int]]:
    """A station database written through its store: `minutes` minute records, two events, a
    calibration and a target result, all in the outbox. Returns their seqs by kind."""
    with closing(StationStore(db)) as store:
        seqs = {
            "minute": store.insert_minutes([
                MinuteRecord(time=T0 + timedelta(minutes=i), device="picarro-1", stream="inlet:top",
                             species={"co2": SpeciesMinute(420.0 + i * 1e-3, 0.05, 55, 419.7, 420.0 + i * 1e-3)},
                             h2o=1.1, flag="U", n_total=60, calibration_id="cal-0",
                             diagnostics={"cavity_pressure": 140.0})
                for i in range(minutes)], T0),
            "event": [store.insert_event(Event(T0, "agent.start", "info", "agent started")),
                      store.insert_event(Event(T0 + timedelta(minutes=1), "valve.moved", "info", "valve to 3",
                                               "valve-1", {"port": 3}))],
            "calibration": [store.insert_calibration("picarro-1", CALIBRATION, T0)],
            "target": [store.insert_target("picarro-1", TARGET, T0)],
        }
    return seqs


def forward_outbox(db: Path, central: CentralStore, station: str) -> None:
    """Everything in the station's outbox to central's ingest, one batch per kind, as the
    forwarder sends it (BatchEncoder over the stored payloads)."""
    with closing(StationStore(db, read_only=True)) as store:
        encoder = BatchEncoder(station, store.store_id())
        rows = store.outbox_after(0, 1_000_000)
    by_kind: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for seq, kind, payload in rows:
        by_kind[kind].append((seq, payload))
    handled = Ingestor(central).handle([Message(topic_for(station, kind), encoder.encode(kind, T0, records))
                                        for kind, records in by_kind.items()])
    refused = [h.outcome for h in handled if not isinstance(h.outcome, BatchOutcome) or h.outcome.dead_lettered]
    assert not refused, f"central refused some of the station's records: {refused}"
