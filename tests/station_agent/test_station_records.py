"""`station-agent records`, run as a process on a station database written through the station's
store (tests/support/records.py): every record by kind with what identifies it, the outbox split
by kind (targets apart from calibrations), the set-aside seqs; read-only, with or without a
writer holding the database."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from support.records import CALIBRATION, T0, TARGET, fill_station

from ghgnet.records import Event
from station_agent.storage.store import StationStore

BIN = Path(sys.executable).parent
STATION = "st-records"


def records(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    config = tmp / "station.toml"
    config.write_text(f'[station]\nid = "{STATION}"\n\n[storage]\npath = "station.sqlite"\n')
    return subprocess.run([BIN / "station-agent", "records", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=60)


def test_records_lists_every_kind_the_outbox_by_kind_and_the_set_aside_seqs(tmp_path):
    db = tmp_path / "station.sqlite"
    seqs = fill_station(db)
    m = seqs["minute"]
    with closing(StationStore(db)) as store:
        store.acknowledge([(m[0], m[3]), (seqs["event"][0], seqs["event"][0])])  # central took these
        store.set_aside({m[5]: "over forwarding.max_message_bytes"}, T0, lambda moved: None)
        identity = store.store_id()
    before = hashlib.sha256(db.read_bytes()).hexdigest()

    out = records(tmp_path, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert (info["station"], info["store"]) == (STATION, identity) and len(identity) == 32
    held = info["records"]
    assert [r["seq"] for r in held["minute"]] == m  # acknowledged or not: the station keeps them
    assert held["minute"][2] == {"seq": m[2], "device": "picarro-1", "time": "2026-03-01T00:02:00.000Z",
                                 "stream": "inlet:top"}
    assert held["event"] == [{"seq": seqs["event"][0], "kind": "agent.start", "time": "2026-03-01T00:00:00.000Z"},
                             {"seq": seqs["event"][1], "kind": "valve.moved", "time": "2026-03-01T00:01:00.000Z"}]
    assert held["calibration"] == [{"seq": seqs["calibration"][0], "id": CALIBRATION["id"],
                                    "time_start": CALIBRATION["time_start"], "time_end": CALIBRATION["time_end"]}]
    assert held["target"] == [{"seq": seqs["target"][0], "id": TARGET["id"], "time": TARGET["time"],
                               "cylinder": "TGT-1"}]
    # Both results travel as kind "calibration"; the outbox still tells the target apart.
    assert info["outbox"] == {"minute": [m[4]], "event": [seqs["event"][1]], "calibration": seqs["calibration"],
                              "target": seqs["target"], "emission": [], "flux": []}
    assert info["set_aside"] == [m[5]]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before, "records wrote to the database"

    table = records(tmp_path)
    assert table.returncode == 0, table.stderr
    assert f"store {identity}" in table.stdout and f"set aside: {m[5]}" in table.stdout
    minute_row = next(line for line in table.stdout.splitlines() if " minute " in line)
    assert f"{m[0]}..{m[5]}" in minute_row and " 6 " in minute_row and " 1 " in minute_row


def test_records_reads_while_a_writer_holds_the_database(tmp_path):
    db = tmp_path / "station.sqlite"
    fill_station(db, minutes=3)
    writer = StationStore(db)  # as the running agent's writer thread holds it (WAL)
    try:
        seq = writer.insert_event(Event(T0, "maintenance.on", "info", "filter change"))
        out = records(tmp_path, "--json")
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert len(info["records"]["minute"]) == 3
        assert info["records"]["event"][-1] == {"seq": seq, "kind": "maintenance.on",
                                                "time": "2026-03-01T00:00:00.000Z"}
        assert info["outbox"]["event"][-1] == seq
    finally:
        writer.close()


def test_records_without_a_database_says_so_and_exits_3(tmp_path):
    out = records(tmp_path, "--json")
    assert out.returncode == 3 and out.stdout == ""
    assert f"no station database at {tmp_path / 'station.sqlite'}" in " ".join(out.stderr.split())  # rich wraps
    assert not (tmp_path / "station.sqlite").exists()
