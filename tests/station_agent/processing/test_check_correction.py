"""Zero and span corrections on minutes: hand-computed offsets and gains, applied like a calibration."""

from datetime import UTC, datetime

import pytest

from ghgnet.processing.check_correction import check_correction, corrected_species
from ghgnet.processing.minute_record import apply_calibration
from ghgnet.records import MinuteRecord, SpeciesMinute

T = datetime(2026, 3, 1, tzinfo=UTC)


def _minute(raw: float) -> MinuteRecord:
    return MinuteRecord(T, "g2401", "inlet:100m", {"co2": SpeciesMinute(raw, 0.05, 55, raw)}, 1.0, "U")


def test_offset_correction_on_top_of_a_calibration():
    # calibration f(x) = 0.5 + 1.002 x; the zero gas (0 ppm) reads raw 0.3 -> f = 0.8006
    c = corrected_species("co2", "offset", 0.3, 0.0, (0.5, 1.002))
    assert c.before == pytest.approx(0.8006)
    assert c.offset == pytest.approx(-0.8006)
    assert c.coefficients == pytest.approx((0.5 - 0.8006, 1.002))
    rec = apply_calibration(_minute(400.0), {"co2": c.coefficients}, "zero-g2401-x")
    assert rec.species["co2"].cal_mean == pytest.approx(0.5 + 1.002 * 400.0 - 0.8006)
    assert rec.calibration_id == "zero-g2401-x"


def test_gain_correction_pivots_at_zero():
    # uncalibrated analyzer (identity) reads the 500 ppm span gas as 495: gain 500/495
    c = corrected_species("co2", "gain", 495.0, 500.0, None)
    assert c.gain == pytest.approx(500 / 495)
    assert c.coefficients == pytest.approx((0.0, 500 / 495))
    rec = apply_calibration(_minute(396.0), {"co2": c.coefficients}, "span-1")
    assert rec.species["co2"].mean == pytest.approx(400.0)


def test_offset_then_gain_stack_in_order():
    zero = check_correction("offset", {"co2": 2.0, "ch4": 5.0}, {"co2": 0.0, "ch4": 0.0}, None)
    assert zero["co2"].coefficients == pytest.approx((-2.0, 1.0))
    # span read 502 raw: after the offset 500, assigned 450 -> gain 0.9
    span = check_correction("gain", {"co2": 502.0}, {"co2": 450.0}, {"co2": zero["co2"].coefficients})
    assert span["co2"].before == pytest.approx(500.0)
    assert span["co2"].coefficients == pytest.approx((-1.8, 0.9))
    rec = apply_calibration(_minute(402.0), {"co2": span["co2"].coefficients}, "span-2")
    assert rec.species["co2"].cal_mean == pytest.approx(0.9 * (402.0 - 2.0))


def test_a_span_that_reads_nothing_or_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="no gain"):
        corrected_species("co2", "gain", 0.0, 500.0, None)
    with pytest.raises(ValueError, match="offset or gain"):
        corrected_species("co2", "drift", 1.0, 0.0, None)
    with pytest.raises(ValueError, match="no species"):
        check_correction("offset", {"co2": 1.0}, {"ch4": 0.0}, None)
