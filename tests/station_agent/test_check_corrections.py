"""Zero and span checks that correct, in the station's CalibrationBook with a real store: the
offset and gain corrections reach the following minutes with their own id, stack in order, survive
a restart, and a full calibration supersedes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ghgnet.logs import get_logger
from ghgnet.processing.calibration import fit_calibration
from ghgnet.processing.minute_record import apply_calibration
from ghgnet.records import MinuteRecord, SpeciesMinute
from station_agent.sequencing.engine import RunRecord
from station_agent.sequencing.sampling_config import CheckRun, SamplingConfig
from station_agent.storage.calibration_results import CalibrationBook, result_to_wire
from station_agent.storage.store import StationStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DEV = "g2401"
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def _minute(t: datetime, stream: str, raw: float) -> MinuteRecord:
    return MinuteRecord(t, DEV, stream, {"co2": SpeciesMinute(raw, 0.01, 30, raw)}, 0.0, "U", n_total=30)


def _check(stream: str, correct: str) -> CheckRun:
    return CheckRun(name=f"{stream}-check", stream=stream, measure_s=600, use_last_minutes=3, correct=correct,
                    schedule={"interval_hours": 24})


def _run_check(book, store, cfg: CheckRun, start: datetime, raw: float) -> datetime:
    end = start + timedelta(minutes=10)
    store.insert_minutes([_minute(start + timedelta(minutes=i), cfg.stream, raw) for i in range(10)], start)
    book.add_run(RunRecord("check", cfg.name, start, end, [(cfg.stream, 0, start, end)], cfg))
    book.process(store, lambda d: FAR, end)
    return end


@pytest.fixture
def setup(tmp_path):
    store = StationStore(tmp_path / "s.sqlite")
    for cid, role, co2 in (("CAL-A", "standard", 380.0), ("CAL-B", "standard", 420.0), ("SPAN-1", "span", 500.0)):
        store.upsert_cylinder({"id": cid, "role": role, "assigned": {"co2": co2}, "scale": {"co2": "WMO-CO2-X2019"}},
                              T0)
    events = []
    book = CalibrationBook(None, [DEV], lambda s, e: events.append(e), get_logger())
    # a full calibration: the analyzer reads 2 ppm high at both standards -> f(x) = x - 2
    cal = fit_calibration("cal-1", T0, T0 + timedelta(hours=1), {"CAL-A": {"co2": 382.0}, "CAL-B": {"co2": 422.0}},
                          {"CAL-A": {"co2": 380.0}, "CAL-B": {"co2": 420.0}})
    store.insert_calibration(DEV, result_to_wire(cal), T0 + timedelta(hours=1))
    book.load(store)
    yield book, store, events
    store.close()


def test_zero_then_span_correct_the_following_minutes_with_their_own_ids(setup):
    book, store, events = setup
    # zero gas (none in the registry: 0 ppm) reads raw 2.5 -> f = 0.5 -> offset -0.5
    z_end = _run_check(book, store, _check("zero", "offset"), T0 + timedelta(hours=2), 2.5)
    before = book.in_force(DEV, z_end - timedelta(minutes=1))
    assert before.id == "cal-1"
    zero = book.in_force(DEV, z_end)
    assert zero.id == "zero-g2401-20260301T0200Z"
    assert zero.coefficients["co2"] == pytest.approx((-2.5, 1.0))
    rec = apply_calibration(_minute(z_end, "inlet:top", 402.0), zero.coefficients, zero.id)
    assert rec.species["co2"].cal_mean == pytest.approx(399.5) and rec.calibration_id == zero.id
    # span gas SPAN-1 (500) reads raw 507.5 -> after the offset 505 -> gain 500/505
    s_end = _run_check(book, store, _check("span", "gain"), T0 + timedelta(hours=3), 507.5)
    span = book.in_force(DEV, s_end)
    assert span.id == "span-g2401-20260301T0300Z"
    g = 500 / 505
    assert span.coefficients["co2"] == pytest.approx((-2.5 * g, g))
    rec = apply_calibration(_minute(s_end, "inlet:top", 402.5), span.coefficients, span.id)
    assert rec.species["co2"].cal_mean == pytest.approx(400.0 * g)
    kinds = [e.kind for e in events]
    assert kinds.count("check.offset_corrected") == 1 and kinds.count("check.gain_corrected") == 1
    ev = next(e for e in events if e.kind == "check.gain_corrected")
    assert ev.data["base"] == zero.id and ev.data["calibration"] == "cal-1"
    assert ev.data["species"]["co2"]["gain"] == pytest.approx(g)


def test_corrections_survive_a_restart_and_a_full_calibration_supersedes_them(setup):
    book, store, _ = setup
    z_end = _run_check(book, store, _check("zero", "offset"), T0 + timedelta(hours=2), 2.5)
    again = CalibrationBook(None, [DEV], lambda s, e: None, get_logger())
    again.load(store)
    assert again.in_force(DEV, z_end).coefficients == book.in_force(DEV, z_end).coefficients
    cal2 = fit_calibration("cal-2", T0 + timedelta(hours=5), T0 + timedelta(hours=6),
                           {"CAL-A": {"co2": 381.0}, "CAL-B": {"co2": 421.0}},
                           {"CAL-A": {"co2": 380.0}, "CAL-B": {"co2": 420.0}})
    store.insert_calibration(DEV, result_to_wire(cal2), T0 + timedelta(hours=6))
    again.load(store)
    assert again.in_force(DEV, T0 + timedelta(hours=4)).id.startswith("zero-")
    after = again.in_force(DEV, T0 + timedelta(hours=6))
    assert after.id == "cal-2" and after.coefficients["co2"] == pytest.approx((-1.0, 1.0))


def test_a_check_that_only_reports_changes_nothing(setup):
    book, store, events = setup
    end = _run_check(book, store, _check("zero", "none"), T0 + timedelta(hours=2), 2.5)
    assert book.in_force(DEV, end).id == "cal-1"
    assert [e.kind for e in events] == ["check.zero"]


def test_a_zero_check_cannot_correct_the_gain():
    with pytest.raises(ValueError, match="zero check corrects the offset"):
        _check("zero", "gain")
    with pytest.raises(ValueError, match="span check corrects the gain"):
        _check("span", "offset")


def test_a_performance_test_names_known_streams():
    base = {"valve": "v", "safe_stream": "inlet:a", "streams": [{"name": "inlet:a", "port": 1},
                                                               {"name": "cal:X", "port": 2}],
            "ambient": [{"stream": "inlet:a", "duration_s": 60}]}
    cfg = SamplingConfig.model_validate(base | {"performance_tests": [{"continuous": "cal:X", "cycle": ["cal:X"]}]})
    assert cfg.performance_tests[0].continuous_s == 86400 and cfg.performance_tests[0].schedule is None
    with pytest.raises(ValueError, match="performance test performance-test: target:W"):
        SamplingConfig.model_validate(base | {"performance_tests": [{"continuous": "cal:X", "cycle": ["cal:X"],
                                                                     "water": "target:W"}]})


def test_the_event_carries_the_chain_flat_whatever_its_depth():
    from station_agent.storage.calibration_results import flat_chain

    primary = {"references": [{"id": "NOAA-1", "assigned": {"co2": 400.0}, "uncertainty": {"co2": 0.01},
                               "scale": {"co2": "WMO-CO2-X2019"}, "chain": []}]}
    secondary = {"references": [{"id": "SEC-1", "assigned": {"co2": 401.0}, "uncertainty": {"co2": 0.02},
                                 "scale": {"co2": "WMO-CO2-X2019"}, "chain": [primary]}]}
    working = {"references": [
        {"id": "REF-A", "assigned": {"co2": 380.0}, "uncertainty": {"co2": 0.03}, "scale": {"co2": "X"},
         "chain": [secondary]},
        {"id": "REF-B", "assigned": {"co2": 420.0}, "uncertainty": {"co2": 0.03}, "scale": {"co2": "X"},
         "chain": [secondary]}]}
    links = flat_chain("WS-1", working)
    assert [(x["id"], x["traces_to"]) for x in links] == [
        ("WS-1", ["REF-A", "REF-B"]), ("REF-A", ["SEC-1"]), ("REF-B", ["SEC-1"]), ("SEC-1", ["NOAA-1"]),
        ("NOAA-1", [])]
    assert links[3]["uncertainty"] == {"co2": 0.02}


def test_an_assigned_value_outlives_the_config_declaration_but_not_an_explicit_add(tmp_path):
    store = StationStore(tmp_path / "s.sqlite")
    try:
        declared = {"id": "WS-1", "role": "standard", "assigned": {"co2": 400.0}, "scale": {"co2": "X"}}
        store.upsert_cylinder(declared, T0)
        trace = {"references": [{"id": "REF-A"}], "method": "bracketed"}
        store.upsert_cylinder(declared | {"assigned": {"co2": 400.012}, "uncertainty": {"co2": 0.004},
                                          "traceability": trace}, T0)
        store.upsert_cylinder(declared | {"pressure_bar": 90.0}, T0, keep_assignment=True)  # a restart
        row = store.cylinders()[0]
        assert row["assigned"] == {"co2": 400.012} and row["traceability"] == trace and row["pressure_bar"] == 90.0
        store.upsert_cylinder(declared, T0)  # `cylinders add` by hand
        row = store.cylinders()[0]
        assert row["assigned"] == {"co2": 400.0} and row["traceability"] == {}
    finally:
        store.close()
