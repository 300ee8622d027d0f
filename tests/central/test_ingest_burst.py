"""MQTT payloads as an input surface, end to end: a `central-receiver run` process under a real
mosquitto takes bursts of garbage on a station's topics (random bytes, mutated batches, an
oversized payload, broken statuses), keeps running, stores nothing that the wire contract refuses,
and stores and acknowledges once each valid record sent after the garbage.

tests/central/test_ingest_fuzz.py checks the same surface in-process, message by message, with
parse_batch as the oracle for what each payload must become; this file adds the process, the
broker and the order (garbage first, then the good records)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.mqtt import TestStation, minute
from support.wait import wait_until
from test_ingest_fuzz import mutated_payloads

from central.store import open_store
from ghgnet.wire import WireError, encode_batch, parse_batch

BIN = Path(sys.executable).parent
SENT = datetime(2026, 3, 2, tzinfo=UTC)
MAX_PAYLOAD = 65_536
KINDS = ["minute", "event", "calibration", "status"]


class Central:
    """`central-receiver run` as a process, with its log file and a reading connection."""

    def __init__(self, tmp: Path, broker) -> None:
        self.db = tmp / "central.sqlite"
        self.log = tmp / "central-receiver.log"
        config = tmp / "central.toml"
        config.write_text(f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nclient_id = "central-burst"\n\n'
                          f'[storage]\npath = "{self.db}"\n\n[ingest]\nmax_payload_bytes = {MAX_PAYLOAD}\n\n'
                          '[logging]\nlevel = "info"\nformat = "json"\n')
        self.proc = subprocess.Popen([str(BIN / "central-receiver"), "run", "--config", str(config)],
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        wait_until(lambda: b'"event": "subscribed"' in self.log.read_bytes() or self.proc.poll() is not None,
                   timeout_s=60, interval_s=0.1, message="central-receiver to subscribe")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def dead_letters(self) -> int:
        store = open_store("sqlite", path=self.db)
        try:
            return store.dead_letter_count()
        finally:
            store.close()

    def held(self) -> list[int]:
        """Every seq held for st-a, any kind (a seq held as two kinds appears twice)."""
        store = open_store("sqlite", path=self.db)
        try:
            return store.held_seqs("st-a")
        finally:
            store.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture
def central(tmp_path, mosquitto) -> Iterator[Central]:
    c = Central(tmp_path, mosquitto)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def station(mosquitto) -> Iterator[TestStation]:
    s = TestStation(mosquitto, "st-a")
    yield s
    s.close()


garbage = st.tuples(st.sampled_from(KINDS), st.binary(max_size=300) | mutated_payloads()
                    | st.sampled_from([b"", b"{", b"[]", b"null", b"\xff" * 10, b"[" * 100_000,
                                       b"x" * (MAX_PAYLOAD + 1)]))


def accepted_seqs(kind: str, payload: bytes) -> set[int] | None:
    """The seqs the wire contract lets through from a batch (what central may store); None when
    it refuses the whole payload (central must dead-letter it)."""
    if kind == "status":
        return set()
    try:
        batch = parse_batch(f"ghg/v1/st-a/{kind}", payload, MAX_PAYLOAD)
    except WireError:
        return None
    return {r.seq for r in batch.records}


class Ledger:
    """What the bursts so far allow central to hold for st-a, and the good seqs it must hold."""

    def __init__(self) -> None:
        self.allowed: set[int] = set()
        self.required: set[int] = set()
        self.refused = 0
        self.next_good = 1_000_000


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(burst=st.lists(garbage, min_size=5, max_size=25))
def test_a_receiver_process_outlives_a_burst_of_garbage_and_stores_the_good_records_once(
        central, station, ledger, burst):
    for kind, payload in burst:
        station.publish(kind, payload)  # PUBACK: the broker took it
        seqs = accepted_seqs(kind, payload)
        ledger.allowed |= seqs or set()
        ledger.refused += seqs is None
    good = list(range(ledger.next_good, ledger.next_good + 5))
    ledger.next_good += 5
    # minute `seq` after t0: t0 puts the good ones in 2026, whatever their seq (central refuses the future)
    t0 = SENT - timedelta(minutes=good[-1])
    station.publish("minute", encode_batch("st-a", "minute", [minute(s, t0=t0) for s in good], SENT))
    station.wait_acked(good, timeout_s=30)
    ledger.allowed |= set(good)
    ledger.required |= set(good)
    assert central.proc.poll() is None, "central-receiver died"
    held = central.held()
    assert ledger.required <= set(held) <= ledger.allowed  # nothing lost, nothing stored wrongly
    assert all(held.count(s) == 1 for s in good)  # once
    assert central.dead_letters() >= ledger.refused  # every refused payload kept as a dead letter
    log = central.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert all(json.loads(line) for line in log.splitlines() if line.startswith("{"))
