"""What a station and central hold, read by tests through the stores' own read methods: the ones
`station-agent records` and `central-receiver records` print (simulators.network runs those
commands; tests that poll read in process, which costs no interpreter start per look).

Records come as {kind: {seq: identity}} (`simulators.network.identities`), so the two sides
compare seq by seq. A database not made yet holds nothing.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

from central.store import CentralStore, open_store
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
