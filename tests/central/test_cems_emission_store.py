"""Emission records (a stack CEMS's minutes and hours) on the wire and in central's store, on both
backends: validated, in JSON and the lean encoding, stored once, read back by unit and period."""

from __future__ import annotations

from datetime import UTC, datetime

from ghgnet.wire import (
    BATCH_KINDS,
    EmissionWire,
    LeanEncoder,
    encode_batch,
    lean_to_json,
    parse_batch,
    record_to_json,
    subscription_filters,
)

NOW = datetime(2026, 3, 2, tzinfo=UTC)
STORE = "0123456789abcdef0123456789abcdef"


def hour(seq: int, h: int, modc: str = "01", mass: float | None = 420000.0) -> EmissionWire:
    return EmissionWire(seq=seq, period="hour", unit="unit-1", time=datetime(2026, 3, 1, h, tzinfo=UTC),
                        operating_h=1.0, co2_dry_pct=13.1, standard_flow_m3_h=1.6e6, mass_kg=mass,
                        co2_modc="01", flow_modc=modc)


def minute(seq: int) -> EmissionWire:
    return EmissionWire(seq=seq, period="minute", unit="unit-1", time=datetime(2026, 3, 1, 0, 1, tzinfo=UTC),
                        operating_h=1 / 60, co2_dry_pct=None, standard_flow_m3_h=1.6e6, mass_kg=None,
                        co2_valid=False, flow_valid=True, reasons=["co2_over_range"])


def test_emission_is_a_batch_kind_with_its_topic():
    assert "emission" in BATCH_KINDS and subscription_filters()["emission"] == "ghg/v1/+/emission"


def test_a_bad_emission_record_is_refused_naming_its_field():
    payload = encode_batch("st-a", "emission", [hour(1, 0)], NOW, store=STORE).replace(b'"period":"hour"',
                                                                                         b'"period":"week"')
    parsed = parse_batch("ghg/v1/st-a/emission", payload)
    assert parsed.records == [] and "period" in parsed.rejected[0].reason


def test_the_lean_encoding_stands_for_the_same_emission_batch():
    recs = [hour(1, 0), minute(2)]
    rows = [(r.seq, "emission", record_to_json(r.model_dump(mode="json", exclude={"seq"})).encode()) for r in recs]
    lean = LeanEncoder("st-a", STORE).encode_rows("emission", NOW, rows)
    parsed = parse_batch("ghg/v1/st-a/emission", lean_to_json(lean, 1 << 20))
    assert parsed.records == recs and parsed.store == STORE


def test_emissions_are_stored_once_and_read_back_by_unit_and_period(store):
    batch = parse_batch("ghg/v1/st-a/emission",
                        encode_batch("st-a", "emission", [hour(1, 0), hour(2, 1, "H1"), minute(3)], NOW, store=STORE))
    first = store.store_batch(batch, NOW)
    again = store.store_batch(batch, NOW)
    assert (first.new, again.new, again.duplicate) == (3, 0, 3)
    assert store.held_seqs("st-a", STORE) == [1, 2, 3]
    hours = store.emissions("unit-1", "hour", datetime(2026, 3, 1, tzinfo=UTC), NOW)
    assert [(h["time"].hour, h["flow_modc"], h["mass_kg"]) for h in hours] == [(0, "01", 420000.0), (1, "H1", 420000.0)]
    (m,) = store.emissions("unit-1", "minute", datetime(2026, 3, 1, tzinfo=UTC), NOW)
    assert (m["co2_valid"], m["flow_valid"], m["reasons"], m["co2_dry_pct"]) == (False, True, ["co2_over_range"], None)
    ids = store.record_identities("st-a")["emission"]
    assert [(r["seq"], r["period"]) for r in ids] == [(1, "hour"), (2, "hour"), (3, "minute")]


def test_a_conflicting_copy_of_an_emission_is_not_stored(store):
    store.store_batch(parse_batch("ghg/v1/st-a/emission", encode_batch("st-a", "emission", [hour(1, 0)], NOW,
                                                                        store=STORE)), NOW)
    out = store.store_batch(parse_batch("ghg/v1/st-a/emission", encode_batch(
        "st-a", "emission", [hour(1, 0, mass=1.0)], NOW, store=STORE)), NOW)
    assert out.new == 0 and out.conflicts == [1]
    (h,) = store.emissions("unit-1", "hour", datetime(2026, 3, 1, tzinfo=UTC), NOW)
    assert h["mass_kg"] == 420000.0

