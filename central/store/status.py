"""Which status message of a station central keeps, judged by what it received and when.

A station's status times come from its own clock, and its last will cannot carry a fresh one: the
broker publishes a payload the agent built when it started (station_agent/forwarding/forwarder.py), so a
will's `time` is older than the "up" messages before it, and the same will bytes are published
again at every later loss of the same agent's connection. Central therefore:

- keeps `received_at`, the time it first RECEIVED the stored status (its own clock), and judges
  "down after `down_after_intervals` status intervals" on it (central/qc.py `station_state`);
- takes an "up" only when its station time is newer than every "up" it has taken from that
  station (`last_up_time`, schema 3): a retained status the broker hands out again when a receiver
  (re)subscribes, a QoS 1 redelivery, or an "up" delivered late after the station's will never
  revives a station nor refreshes `received_at`. While the station is up and its last "up" is
  stamped beyond central's clock (the station's clock ran ahead and was set right), any "up" is
  taken (schema 5): those after the correction are older, and must not all be refused. A status
  stamped more than central's tolerance beyond its clock is dead-lettered whole (`time_in_future`:
  central/ingest.py), so one cannot freeze a state either: a station set right while it is down
  waits for its clock to pass its last "up", at most that tolerance;
- takes a "down" (the last will, or the agent's clean stop) whenever the stored status is "up",
  whatever its station time; a "down" over a "down" changes nothing.

With one receiver, MQTT delivers a station's messages in order and a will always comes before the
"up" messages of the agent's next connection (the broker publishes it when the old connection is
dropped or taken over), so these rules follow the station exactly. Two receivers both store every
status (status is never a shared subscription): if the slower one commits a will after the faster
one stored the next "up", the station shows "down" until its next "up", one status interval later.
"""

from __future__ import annotations

STATUS_COLUMNS = ("station", "state", "time", "received_at", "backlog", "oldest_unacked_age_s", "agent_version",
                  "interval_s", "last_seq", "details", "last_up_time")


def migration_v3(types: dict[str, str]) -> list[str]:
    return [
        f"ALTER TABLE status ADD COLUMN last_up_time {types['time']}",
        "UPDATE status SET last_up_time = time WHERE state = 'up'",
    ]


def status_upsert_sql() -> str:
    """The statement storing one status (parameters in STATUS_COLUMNS order, `?` marks); its
    rowcount is 0 when the rules above keep the stored status."""
    cols = ", ".join(STATUS_COLUMNS)
    marks = ", ".join("?" * len(STATUS_COLUMNS))
    updated = ", ".join(f"{c} = excluded.{c}" for c in STATUS_COLUMNS[1:-1])
    return (
        f"INSERT INTO status ({cols}) VALUES ({marks}) ON CONFLICT (station) DO UPDATE SET {updated}, "
        "last_up_time = CASE WHEN excluded.state = 'up' THEN excluded.time ELSE status.last_up_time END "
        "WHERE (excluded.state = 'up' AND (status.last_up_time IS NULL OR excluded.time > status.last_up_time "
        "OR (status.state = 'up' AND status.last_up_time > excluded.received_at))) "
        "OR (excluded.state = 'down' AND status.state = 'up')"
    )


RECORD_COUNTS = (("emissions", "emission"), ("fluxes", "flux"))
"""Station counters added after schema 1: (column of the station table, the record table it counts)."""


def migration_record_counts(types: dict[str, str]) -> list[str]:
    """The station table counts emission and flux records too (until then `status` and the station
    table showed minutes, events, calibrations and targets only), filled from the records held."""
    return [
        *(f"ALTER TABLE station ADD COLUMN {col} {types['bigint']} NOT NULL DEFAULT 0" for col, _ in RECORD_COUNTS),
        *(f"UPDATE station SET {col} = (SELECT count(*) FROM {table} r WHERE r.station = station.station)"
          for col, table in RECORD_COUNTS),
    ]
