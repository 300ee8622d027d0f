"""Which status central keeps and how it judges a station by the times it RECEIVED them
(central/store/status.py), on SQLite and PostgreSQL: a last will older than the "up" before it, a
retained status handed out again, a late "up" after the will, the migration of a schema-2 store,
and "down after two intervals" on received times even when the station's clock runs ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support.central import open_at_schema

from central.config import CentralConfig
from central.store import open_store
from central.store.sql import migrations
from central.store.sqlite import TYPES
from central.views import station_health
from ghgnet.wire import StatusMessage

ARMED = datetime(2026, 3, 1, 9, tzinfo=UTC)  # when the agent built its will (its start)
R0 = datetime(2026, 3, 1, 9, 0, 5, tzinfo=UTC)  # central's clock
LATEST_SCHEMA = len(migrations(TYPES))


def status(state: str, minutes: float, backlog: int = 0) -> StatusMessage:
    return StatusMessage(station="st-a", state=state, time=ARMED + timedelta(minutes=minutes), backlog=backlog,
                         interval_s=30.0)


def at(seconds: float) -> datetime:
    return R0 + timedelta(seconds=seconds)


def kept(store):
    s = store.stations()[0]
    return s.status.state, s.status.time, s.status.received_at, s.last_seen


def test_central_keeps_the_station_status_by_what_it_received(store):
    assert store.store_status(status("up", 1, backlog=5), at(0)).stored
    # the broker hands the retained status out again (a receiver reconnects): not news
    assert not store.store_status(status("up", 1, backlog=5), at(100)).stored
    assert kept(store) == ("up", ARMED + timedelta(minutes=1), at(0), at(0))
    assert store.store_status(status("up", 2), at(30)).stored
    # the last will: built at the agent's start, older than the last "up", and still the news
    will = status("down", 0)
    assert store.store_status(will, at(45)).stored
    assert kept(store) == ("down", ARMED, at(45), at(45))
    # an "up" from before the will, delivered late, does not revive the station
    assert not store.store_status(status("up", 2), at(50)).stored
    assert not store.store_status(status("up", 1.5), at(51)).stored
    # the same will again (retained, or a second link loss of the same agent) changes nothing
    assert not store.store_status(will, at(60)).stored
    assert kept(store) == ("down", ARMED, at(45), at(45))
    # the agent is back: its next "up" is newer than every "up" seen
    assert store.store_status(status("up", 3), at(70)).stored
    assert kept(store)[:3] == ("up", ARMED + timedelta(minutes=3), at(70))
    # a second loss of the same agent's link: the same will bytes, taken again over an "up"
    assert store.store_status(will, at(80)).stored
    assert kept(store)[0] == "down"


def test_a_schema_2_store_learns_the_last_up_time_of_its_stations(store_location):
    old = open_at_schema(store_location, 2)
    try:  # the status of a station as schema 2 kept it
        old._execute(old._sql(
            "INSERT INTO status (station, state, time, received_at, backlog, agent_version, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"), ("st-a", "up", old._t(ARMED + timedelta(minutes=1)), old._t(at(0)),
                                               0, "", "{}"))
        old._execute(old._sql("INSERT INTO station (station, first_seen, last_seen) VALUES (?, ?, ?)"),
                     ("st-a", old._t(at(0)), old._t(at(0))))
    finally:
        old.close()
    again = open_store(**store_location)
    try:
        assert again.schema_version() == LATEST_SCHEMA
        assert not again.store_status(status("up", 1), at(100)).stored  # the retained copy
        assert again.stations()[0].status.received_at == at(0)
        assert again.store_status(status("up", 2), at(130)).stored
    finally:
        again.close()


def test_down_after_two_intervals_counts_on_central_clock_not_the_stations(store):
    # a station on a simulated clock (--speed 720) stamps its status days ahead of central
    ahead = StatusMessage(station="st-a", state="up", time=at(0) + timedelta(days=5), interval_s=30.0)
    assert store.store_status(ahead, at(0)).stored
    config = CentralConfig.model_validate({})
    (row,) = station_health(store, config, at(59))
    assert (row["state"], row["status_age_s"], row["last_seen_age_s"]) == ("up", 59.0, 59.0)
    (row,) = station_health(store, config, at(61))
    assert row["state"] == "down" and "no status for 61 s" in row["reason"]
