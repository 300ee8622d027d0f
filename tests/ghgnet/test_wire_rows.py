"""The station's fast path, `BatchEncoder.encode_rows` on outbox rows read as bytes, makes the same
bytes as `encode` on (seq, object text) pairs, and central reads them alike through both of its
decoders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from central.ingest import parse_batch_lean
from central.lean_minutes import decode_minutes
from ghgnet.records import Event, MinuteRecord, SpeciesMinute
from ghgnet.wire import BatchEncoder, parse_batch
from station_agent.storage.store import StationStore

SENT = datetime(2026, 3, 2, 12, tzinfo=UTC)
STORE = "0123456789abcdef0123456789abcdef"


def _outbox(path) -> list[tuple[int, str, bytes]]:
    t = datetime(2026, 3, 1, tzinfo=UTC)
    store = StationStore(path)
    try:
        store.insert_minutes([
            MinuteRecord(time=t + timedelta(minutes=i), device="g2401", stream="inlet:10m",
                         species={"co2": SpeciesMinute(mean=420.0 + i, std=0.05, n=55, raw_mean=419.9, cal_mean=420.0 + i)},
                         h2o=1.2, flag="UN"[i % 2], reasons=("flush",) * (i % 2), n_total=60)
            for i in range(5)
        ], t)
        store.insert_event(Event(time=t, kind="alarm", severity="error", message="é \u2028", device="g2401"))
        assert [r[2].decode() for r in store.outbox_after(0, 100, as_bytes=True)] == \
            [r[2] for r in store.outbox_after(0, 100)]
        return store.outbox_after(0, 100, as_bytes=True)
    finally:
        store.close()


@pytest.mark.parametrize("store", [STORE, None])
def test_outbox_rows_encode_as_pairs_do_and_both_decoders_agree(tmp_path, store):
    rows = _outbox(tmp_path / "station.sqlite")
    encoder = BatchEncoder("st-a", store)
    for kind in ("minute", "event"):
        mine = [r for r in rows if r[1] == kind]
        payload = encoder.encode_rows(kind, SENT, mine)
        assert payload == encoder.encode(kind, SENT, [(seq, obj.decode()) for seq, _, obj in mine])
        topic = f"ghg/v1/st-a/{kind}"
        models = parse_batch(topic, payload)
        assert [r.seq for r in models.records] == [r[0] for r in mine] and models.rejected == []
        assert models.store == store
        if kind == "minute":
            lean = decode_minutes("st-a", payload)
            assert lean is not None, "the lean decoder left a station's own batch to the models"
            assert _fields(lean.records) == _fields(models.records) and lean.rejected == []
            assert lean.store == store and lean.sent == models.sent == SENT
            assert _fields(parse_batch_lean(topic, payload).records) == _fields(models.records)


def _fields(records) -> list[tuple]:
    return [(r.seq, r.time, r.device, r.stream, r.flag, r.n_total, r.h2o) for r in records]
