"""A minute's species values on its own row (schema 4, central/store/species.py), on SQLite and
PostgreSQL: a schema-3 store (species in `minute_value` rows) opened by this code keeps every
value bit for bit, and the text written for new rows reads back as exactly the values received,
from the lean decoder's structs and from the wire models alike."""

from __future__ import annotations

import math
import random
import struct
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.central import open_at_schema
from support.mqtt import T0, minute

from central.aggregation import worker as aggregator
from central.lean_minutes import SpeciesLean
from central.store import open_store, species
from central.store.species import load_species, species_json
from central.store.sql import migrations
from ghgnet.wire import ParsedBatch, SpeciesStats

NOW = datetime(2026, 3, 5, tzinfo=UTC)
LATEST_SCHEMA = len(migrations({k: k for k in ("text", "bigint", "int", "real", "time", "json", "bool",
                                               "bytes", "autoid")}))
END = T0 + timedelta(days=30)
TRICKY = [0.0, -0.0, 0.1, 0.1 + 0.2, 1 / 3, 420.0044722222222, 5e-324, 2.2250738585072014e-308,
          1.7976931348623157e308, -1.7976931348623157e308, 1e16, 123456789.12345679, 2.0**53 + 2, -1e-300]


def bits(x: float | None) -> bytes | None:
    return None if x is None else struct.pack("<d", x)


def random_doubles(n: int, seed: int) -> list[float]:
    """Doubles from random bit patterns: every exponent and mantissa, subnormals included."""
    rng = random.Random(seed)
    out: list[float] = []
    while len(out) < n:
        x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(x):
            out.append(x)
    return out


def schema3_minutes(count: int, seed: int) -> dict[tuple[str, int], dict[str, tuple]]:
    """(station, seq) -> {species: (mean, std, n, raw_mean, cal_mean)} over two stations, with
    tricky and random doubles, NULLs, and a minute without any species."""
    values = iter(TRICKY + random_doubles(count * 12, seed))
    out: dict[tuple[str, int], dict[str, tuple]] = {}
    for i in range(count):
        st_ = "st-a" if i % 3 else "st-b"
        names = [] if i == 5 else ["ch4", "co2", "n2o"][: 1 + i % 3]
        out[(st_, i + 1)] = {
            sp: (next(values), None if i % 7 == 0 else next(values), i, next(values),
                 None if i % 4 == 0 else next(values))
            for sp in names
        }
    return out


def write_schema3(location: dict, minutes: dict[tuple[str, int], dict[str, tuple]]) -> dict:
    """Store `minutes` as schema 3 did; returns the values as schema 3 holds them (SQLite keeps
    no negative zero in a REAL column: it reads back as 0.0 there, before any migration)."""
    old = open_at_schema(location, 3)
    try:
        assert old.schema_version() == 3
        t = old._t
        old._begin()
        old._executemany(old._sql(
            "INSERT INTO minute (station, seq, time, device, stream, h2o, flag, reasons, n_total, calibration_id, "
            "diagnostics, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            [(st_, seq, t(T0 + timedelta(minutes=seq)), "g2401", "inlet:100m", 1.25, "U", "[]", 60, None, "{}",
              t(NOW)) for st_, seq in minutes])
        old._executemany(old._sql(
            "INSERT INTO minute_value (station, seq, species, mean, std, n, raw_mean, cal_mean) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
            [(st_, seq, sp, *v) for (st_, seq), values in minutes.items() for sp, v in values.items()])
        old._commit()
        held: dict[tuple[str, int], dict[str, tuple]] = {k: {} for k in minutes}
        for r in old._query("SELECT station, seq, species, mean, std, n, raw_mean, cal_mean FROM minute_value"):
            held[(r[0], r[1])][r[2]] = tuple(r[3:])
        return held
    finally:
        old.close()


def test_a_schema_3_store_keeps_every_species_value_bit_for_bit(store_location, monkeypatch):
    minutes = write_schema3(store_location, schema3_minutes(40, seed=4))
    monkeypatch.setattr(species, "_PAGE", 7)  # pages that end inside a station and across two
    store = open_store(**store_location)
    try:
        assert store.schema_version() == LATEST_SCHEMA
        for station in ("st-a", "st-b"):
            got = {(station, m.seq): {sp: tuple(map(bits, (v.mean, v.std, v.raw_mean, v.cal_mean))) + (v.n,)
                                     for sp, v in m.species.items()}
                   for m in store.minutes(station, T0, END)}
            want = {k: {sp: tuple(map(bits, (v[0], v[1], v[3], v[4]))) + (v[2],) for sp, v in values.items()}
                    for k, values in minutes.items() if k[0] == station}
            assert got == want
        assert store.minute_species("st-a", T0, END) == ["ch4", "co2", "n2o"]
        rows = store.aggregation_minutes("st-b", T0, END)
        assert [(r[5], bits(r[6]), bits(r[7]), r[8]) for r in rows] == [
            (sp, bits(v[4]), bits(v[1]), v[2])
            for (st_, seq), values in minutes.items() if st_ == "st-b" for sp, v in values.items()]
        with pytest.raises(Exception):
            store._query("SELECT count(*) FROM minute_value")
        store._rollback()
        # and it takes new records on the new layout; the migrated ones are the legacy store's, so
        # other content under their seqs conflicts
        out = store.store_batch(ParsedBatch("st-a", "minute", NOW, [minute(s) for s in (2, 3, 100)]), NOW)
        assert (out.new, out.duplicate, out.conflicts) == (1, 0, [2, 3])
        (m,) = [m for m in store.minutes("st-a", T0, END) if m.seq == 100]
        assert m.species["co2"].mean == minute(100).species["co2"].mean
    finally:
        store.close()


def test_an_empty_schema_3_store_migrates(store_location):
    open_at_schema(store_location, 3).close()
    store = open_store(**store_location)
    try:
        assert store.schema_version() == LATEST_SCHEMA and list(store.minutes("st-a", T0, END)) == []
    finally:
        store.close()


finite = st.floats(allow_nan=False, allow_infinity=False)
species_values = st.dictionaries(
    st.sampled_from(["co2", "ch4", "co", "n2o", "h2o_x"]),
    st.tuples(finite | st.none(), finite | st.none(), st.integers(0, 2**31 - 1), finite | st.none(),
              finite | st.none()),
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(species_values)
def test_species_text_reads_back_bit_for_bit_from_either_decoder(values):
    lean = {sp: SpeciesLean(*v) for sp, v in values.items()}
    models = {sp: SpeciesStats(mean=v[0], std=v[1], n=v[2], raw_mean=v[3], cal_mean=v[4]) for sp, v in values.items()}
    assert species_json(lean) == species_json(models)
    got = load_species(species_json(lean))
    assert list(got) == sorted(values)
    assert {sp: (bits(s.mean), bits(s.std), s.n, bits(s.raw_mean), bits(s.cal_mean)) for sp, s in got.items()} == {
        sp: (bits(v[0]), bits(v[1]), v[2], bits(v[3]), bits(v[4])) for sp, v in values.items()}


def test_species_text_is_the_wire_object():
    text = species_json({"co2": SpeciesLean(420.5, 0.05, 55, 420.2, None)})
    assert msgspec.json.decode(text) == {"co2": {"mean": 420.5, "std": 0.05, "n": 55, "raw_mean": 420.2,
                                                 "cal_mean": None, "u": None}}


def test_species_text_keeps_the_minutes_uncertainty():
    lean = {"co2": SpeciesLean(420.5, 0.05, 55, 420.2, 420.4, 0.031)}
    model = {"co2": SpeciesStats(mean=420.5, std=0.05, n=55, raw_mean=420.2, cal_mean=420.4, u=0.031)}
    assert species_json(lean) == species_json(model)
    assert load_species(species_json(lean))["co2"].u == 0.031
    old = '{"co2":{"mean":420.5,"std":0.05,"n":55,"raw_mean":420.2,"cal_mean":420.4}}'  # stored before u
    assert load_species(old)["co2"].u is None


def test_hourly_aggregation_reads_the_new_layout(store):
    store.store_batch(ParsedBatch("st-a", "minute", NOW, [minute(s) for s in range(1, 61)]), NOW)
    arrays = aggregator.minute_arrays(store.aggregation_minutes("st-a", T0, END), [])
    assert {k[1] for k in arrays} == {"co2", "ch4"}
