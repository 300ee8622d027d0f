"""Dead letters: listed with reason and payload excerpt, replayed through the normal ingest path
after a fix, idempotently (a replayed letter that stores is resolved; replaying twice stores once),
on both backends; the CLI's deadletters list|replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.mqtt import minute
from typer.testing import CliRunner

from central.cli import app
from central.config import CentralConfig
from central.deadletters.replay import dead_letter_doc, list_dead_letters, replay_dead_letter, replay_dead_letters
from central.ingest import Ingestor, Message
from central.store import open_store
from ghgnet.wire import StatusMessage, encode_batch, encode_status

CFG = CentralConfig()
T = datetime(2026, 3, 5, 12, tzinfo=UTC)
STORE_ID = "0123456789abcdef0123456789abcdef"


def _future_minutes(store) -> None:
    """A station whose clock runs 3 h ahead of central's: minutes 1..3 are beyond the 1 h tolerance
    and dead-lettered (time_in_future), minute 4 is on time."""
    recs = [minute(s, t0=T + timedelta(hours=3)) for s in (1, 2, 3)] + [minute(4, t0=T - timedelta(minutes=10))]
    payload = encode_batch("st-a", "minute", recs, T, store=STORE_ID)
    (h,) = Ingestor(store, now=lambda: T).handle([Message("ghg/v1/st-a/minute", payload)])
    assert (h.outcome.new, h.outcome.dead_lettered) == (1, 3)


def test_replay_after_the_fix_stores_once_and_resolves(store):
    _future_minutes(store)
    letters = list_dead_letters(store, "st-a")
    assert [d.reason_code for d in letters] == ["time_in_future"] * 3
    doc = dead_letter_doc(letters[0], excerpt_bytes=40)
    assert doc["excerpt"].startswith('{"seq":') and doc["excerpt"].endswith("…") and len(doc["excerpt"]) == 41
    assert doc["resolved_at"] is None and doc["replays"] == 0 and not doc["truncated"]
    # before the fix (central's clock still behind): refused again, nothing new is dead-lettered
    early = replay_dead_letters(store, CFG, T)
    assert [(r.result, r.resolved) for r in early] == [("refused", False)] * 3
    assert "time_in_future" in early[0].detail and store.dead_letter_count() == 3
    assert store.minute_count("st-a") == 1
    # the fix: central's clock is right now (3 h later); the records are within tolerance
    later = T + timedelta(hours=3, minutes=5)
    done = replay_dead_letters(store, CFG, later)
    assert [(r.result, r.resolved) for r in done] == [("stored", True)] * 3
    assert store.minute_count("st-a") == 4
    assert {m.store for m in store.minutes("st-a", T, T + timedelta(hours=4))} == {STORE_ID}
    # idempotent: nothing is left to replay, a forced replay finds the records held
    assert replay_dead_letters(store, CFG, later) == []
    first = letters[-1].id
    assert replay_dead_letter(store, CFG, first, later).result == "already_resolved"
    forced = replay_dead_letter(store, CFG, first, later, force=True)
    assert (forced.result, forced.resolved) == ("duplicate", True)
    assert store.minute_count("st-a") == 4
    d = store.dead_letter(first)
    assert d.resolved_at == later and d.replays == 3 and d.resolution.startswith("stored")
    assert list_dead_letters(store, unresolved=True) == []


def test_whole_messages_replay_or_stay_with_the_new_reason(store):
    ingest = Ingestor(store, now=lambda: T)
    status = StatusMessage(station="st-b", state="up", time=T + timedelta(hours=2), backlog=0, agent_version="t")
    ingest.handle([Message("ghg/v1/st-b/status", encode_status(status)),
                   Message("ghg/v1/st-b/minute", b'{"schema": 1, "station": "st-b", broken')])
    junk, future = list_dead_letters(store, "st-b")
    assert future.reason_code == "time_in_future" and future.seq is None
    assert junk.reason_code != "time_in_future"
    bad = replay_dead_letter(store, CFG, junk.id, T)
    assert (bad.result, bad.resolved) == ("refused", False)
    again = store.dead_letter(junk.id)
    assert again.replays == 1 and again.last_replay_result.startswith("refused") and again.resolved_at is None
    ok = replay_dead_letter(store, CFG, future.id, T + timedelta(hours=2))
    assert (ok.result, ok.resolved) == ("status_stored", True)
    assert [s.status.time for s in store.stations() if s.station == "st-b"] == [T + timedelta(hours=2)]
    assert store.dead_letter_count() == 2  # replays made no new letters


def test_a_truncated_letter_is_not_replayed(tmp_path: Path):
    s = open_store("sqlite", path=tmp_path / "c.sqlite", dead_letter_keep_bytes=10)
    Ingestor(s, now=lambda: T).handle([Message("ghg/v1/st-c/minute", b'{"schema": 1, "station": "st-c", x')])
    (d,) = list_dead_letters(s)
    assert d.truncated
    r = replay_dead_letter(s, CFG, d.id, T)
    assert (r.result, r.resolved) == ("truncated", False) and "10 of 34 bytes" in r.detail
    s.close()


def test_deadletters_cli_lists_and_replays(tmp_path: Path):
    db = tmp_path / "central.sqlite"
    conf = tmp_path / "central.toml"
    conf.write_text(f'[storage]\npath = "{db}"\n')
    s = open_store("sqlite", path=db)
    # stamped 3 h ahead of now (the CLI replays on the real clock): refused then, and again now
    now = datetime.now(UTC)
    recs = [minute(1, t0=now - timedelta(minutes=5)), minute(2, t0=now + timedelta(hours=3))]
    Ingestor(s, now=lambda: now - timedelta(hours=3)).handle(
        [Message("ghg/v1/st-a/minute", encode_batch("st-a", "minute", recs, now))])
    s.close()
    runner = CliRunner()
    listed = runner.invoke(app, ["deadletters", "list", "--config", str(conf), "--json"])
    assert listed.exit_code == 0, listed.output
    docs = json.loads(listed.stdout)
    assert [d["reason_code"] for d in docs] == ["time_in_future", "time_in_future"]
    assert all('"seq":' in d["excerpt"] for d in docs)
    replay = runner.invoke(app, ["deadletters", "replay", "--config", str(conf)])
    assert replay.exit_code == 0, replay.output
    results = [line.split(" ", 2)[1] for line in replay.stdout.splitlines() if line.startswith("#")]
    assert sorted(results) == ["refused:", "stored:"]
    text = runner.invoke(app, ["deadletters", "list", "--config", str(conf), "--unresolved"]).stdout
    assert text.count("unresolved") == 1 and "time_in_future" in text
    again = runner.invoke(app, ["deadletters", "replay", "--config", str(conf)])
    (line,) = [x for x in again.stdout.splitlines() if x.startswith("#")]
    assert "refused: time_in_future" in line
