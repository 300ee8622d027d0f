"""The stack CEMS site (configs/sites/stack-cems/) as real processes: `station-sim run` serves the
simulated 600 MW unit's analyzer, flow monitor and unit state as Modbus TCP servers, `station-agent
run` polls them and computes emission minutes and hours, forwards them over a real mosquitto to a
central receiver, which stores each exactly once. A simulated day at 1440x; the pitot is blocked
for two hours of it (live, through the bench's control port), so those hours must be substituted
and marked, and the day's mass must still be near the simulator's true emission."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from support.site import BIN, site
from support.wait import wait_until

from central.config import CentralConfig
from central.receiver import Receiver
from central.store import open_store
from ghgnet.timeutil import iso_utc
from station_agent.storage.store import StationStore

pytestmark = pytest.mark.slow
SPEED = 1440.0


@pytest.fixture(scope="module")
def day(tmp_path_factory, request):
    """One run shared by the checks: the site for a simulated day, central receiving."""
    from simulators.broker import MosquittoBroker

    tmp = tmp_path_factory.mktemp("stack-cems")
    broker = MosquittoBroker(tmp / "mosquitto").start()
    central_db = tmp / "central.sqlite"
    receiver = Receiver(CentralConfig.model_validate({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "central-cems"},
        "storage": {"backend": "sqlite", "path": str(central_db)}})).start()
    assert receiver.subscribed.wait(10)

    def to_broker(text: str) -> str:
        # the site's fixed ports are made 0 (free) first: the broker's is set back here
        return text.replace('[mqtt]\nhost = "127.0.0.1"\nport = 0', f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}')

    s = site("stack-cems", tmp, SPEED, edit_station=to_broker)
    try:
        started = s.start_agent()
        first_hour = (started + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        blocked = first_hour + timedelta(hours=8)
        s.run_until(blocked + timedelta(minutes=1))
        s.control({"device": "cems-flow", "fault": "blocked_pitot", "duration_s": 7200})
        end = first_hour + timedelta(hours=24)
        s.run_until(end + timedelta(minutes=5))
        truth = s.control({"cmd": "stack_truth", "from": iso_utc(first_hour), "to": iso_utc(end)})["true_mass_t"]
        store = StationStore(tmp / "station.sqlite", read_only=True)
        try:
            wait_until(lambda: store.outbox_stats()["backlog"] == 0, 60, message="the outbox emptied (central acked)")
        finally:
            store.close()
        assert s.stop_agent() == 0
        cli = subprocess.run([BIN / "station-agent", "emissions", "--config", str(s.config), "--from",
                              iso_utc(first_hour), "--to", iso_utc(end), "--by", "hour", "--json"],
                             capture_output=True, text=True, timeout=60)
        yield {"tmp": tmp, "first_hour": first_hour, "end": end, "blocked": blocked, "truth_t": truth,
               "central": central_db, "cli": cli}
    finally:
        s.close()
        receiver.stop()
        broker.kill()


def stored(tmp: Path, period: str) -> list[dict]:
    store = StationStore(tmp / "station.sqlite", read_only=True)
    try:
        return store.emission_rows(period)
    finally:
        store.close()


def test_minutes_and_hours_are_stored_at_the_station(day):
    minutes, hours = stored(day["tmp"], "minute"), stored(day["tmp"], "hour")
    day_minutes = [m for m in minutes if iso_utc(day["first_hour"])[:19] <= m["time"][:19] < iso_utc(day["end"])[:19]]
    assert len(day_minutes) == 1440
    assert sum(m["operating_h"] > 0 for m in day_minutes) >= 1400  # the unit runs all day
    assert len([h for h in hours if h["time"] >= iso_utc(day["first_hour"])[:19]]) >= 24


def test_blocked_pitot_hours_are_substituted_and_marked(day):
    hours = {h["time"]: h for h in stored(day["tmp"], "hour")}
    blocked = [day["blocked"] + timedelta(hours=i) for i in (1,)]  # the first whole hour of the two
    for h in blocked:
        rec = hours[h.strftime("%Y-%m-%dT%H:%M:%SZ")]
        assert rec["flow_modc"] not in ("01", "") and rec["co2_modc"] == "01", rec
        assert rec["mass_kg"] is not None and rec["mass_kg"] > 0
    measured = [h for h in hours.values() if h["flow_modc"] == "01" and h["co2_modc"] == "01"]
    assert len(measured) >= 20


def test_the_day_mass_is_near_the_true_emission(day):
    first, end = day["first_hour"].strftime("%Y-%m-%dT%H"), day["end"].strftime("%Y-%m-%dT%H")
    hours = [h for h in stored(day["tmp"], "hour") if first <= h["time"][:13] < end]
    mass_t = sum(h["mass_kg"] or 0.0 for h in hours) / 1000.0
    # substituted hours (blocked pitot, the daily check's hour stays valid) move it by a few %
    assert mass_t == pytest.approx(day["truth_t"], rel=0.03), (mass_t, day["truth_t"])


def test_central_holds_every_emission_record_once(day):
    produced = stored(day["tmp"], "minute") + stored(day["tmp"], "hour")
    store = StationStore(day["tmp"] / "station.sqlite", read_only=True)
    try:  # records made after the outbox emptied and before the agent stopped wait for its next run
        unsent = set(store.outbox_seqs()["emission"])
    finally:
        store.close()
    assert len(unsent) < 5
    reader = open_store("sqlite", path=day["central"])
    try:
        at_central = reader.record_identities("stack-cems")["emission"]
    finally:
        reader.close()
    held = [r["seq"] for r in at_central]
    assert len(set(held)) == len(held)  # once each
    # everything acknowledged is there; what is still in the outbox may be there too (its ack came
    # after the agent stopped); nothing else
    assert {r["seq"] for r in produced} - unsent <= set(held) <= {r["seq"] for r in produced}
    assert {(r["period"], r["time"][:19]) for r in at_central} <= {(r["period"], r["time"][:19]) for r in produced}


def test_the_emissions_command_reads_the_store_with_the_agent_stopped(day):
    cli = day["cli"]
    assert cli.returncode == 0, cli.stderr
    rows = json.loads(cli.stdout)
    assert len(rows) == 24
    assert sum(r["substituted_hours"] for r in rows) >= 1
    assert sum(r["mass_t"] for r in rows) == pytest.approx(day["truth_t"], rel=0.03)


def test_cems_compare_writes_the_csv_and_a_one_file_html_page(day, tmp_path):
    activity = tmp_path / "activity.csv"
    # a day of a 600 MW unit: ~5,000 t of coal at 20.9 GJ/t and a measured carbon content
    activity.write_text("unit,month,fuel,consumption_t,ncv_gj_per_t,carbon_tc_per_gj,oxidation_fraction\n"
                        "unit-1,2026-03,coal,5000,20.9,0.0262,0.99\n")
    central_toml = tmp_path / "central.toml"
    central_toml.write_text(f'[storage]\nbackend = "sqlite"\npath = "{day["central"]}"\n')
    out = tmp_path / "report"
    res = subprocess.run([BIN / "central-receiver", "cems", "compare", "--config", str(central_toml),
                          "--unit", "unit-1", "--from", iso_utc(day["first_hour"]), "--to", iso_utc(day["end"]),
                          "--activity", str(activity),
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = (out / "comparison.csv").read_text().splitlines()
    assert lines[0].startswith("unit,month,cems_t,accounting_t")
    (row,) = [line.split(",") for line in lines[1:]]
    assert row[:2] == ["unit-1", "2026-03"]
    assert float(row[2]) == pytest.approx(day["truth_t"], rel=0.03)
    assert float(row[3]) == pytest.approx(5000 * 20.9 * 0.0262 * 0.99 * 44 / 12, rel=1e-6)
    assert int(row[7]) >= 1  # the blocked pitot's substituted hours
    page = (out / "comparison.html").read_text()
    assert "<svg" in page and "unit-1" in page and "<img" not in page  # the chart inline: one file
