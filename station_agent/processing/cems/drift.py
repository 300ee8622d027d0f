"""Daily zero/span checks of a CEMS analyzer, their drift against limits, and out-of-control periods.

A check injects zero gas and span gas; the error of each is reading - reference. Limits:
- `HJ75_LIMITS` (default): zero and span drift each within +-2.5 % of full scale over 24 h, the
  daily-check limit HJ 75-2017 sets for gaseous CEMS (its table of daily QA failures, with HJ 76-2017's
  24 h drift specification). Neither standard's text was in the reference corpus, so this number
  is configuration with a documented default, not a verified citation; CO2 is not among HJ 75-2017's
  named pollutants, and a CO2 CEMS specification may set its own.
- `PART75_CO2_LIMITS`: US 40 CFR Part 75: a daily calibration error beyond the specification of
  appendix B section 2.1.4 makes the monitor out of control (section 75.24(a)(1)); for CO2 that
  specification is an absolute difference of 1.0 % CO2 (twice appendix A's 0.5 % CO2 certification
  limit). The 1.0 % value is from the standard's known structure, not quoted from its text here.

Out of control (both HJ 75-2017 and section 75.24): from the failed check until a check passes;
data in between are not valid and are substituted (`substitution`). Each period also records the
last passing check before the failure: HJ 75-2017 substitutes an out-of-control period with
values from before that calibration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray


class DriftUnit(StrEnum):
    PERCENT_FULL_SCALE = "pct_fs"   # |reading - reference| / full scale * 100
    ABSOLUTE = "abs"                # |reading - reference|, in the analyzer's unit (% CO2)


@dataclass(frozen=True, slots=True)
class DriftLimits:
    zero: float
    span: float
    unit: DriftUnit = DriftUnit.PERCENT_FULL_SCALE

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit", DriftUnit(self.unit))
        if not (self.zero > 0 and self.span > 0):
            raise ValueError(f"drift limits must be > 0, got zero={self.zero}, span={self.span}")


HJ75_LIMITS = DriftLimits(zero=2.5, span=2.5, unit=DriftUnit.PERCENT_FULL_SCALE)
PART75_CO2_LIMITS = DriftLimits(zero=1.0, span=1.0, unit=DriftUnit.ABSOLUTE)


@dataclass(frozen=True, slots=True)
class DailyCheck:
    """One zero/span check: time (datetime64), the analyzer's readings of the zero and span gases,
    the span gas's certified value and the zero gas's (0 unless stated), the analyzer's full scale."""

    time: np.datetime64
    zero_reading: float
    span_reading: float
    span_reference: float
    full_scale: float
    zero_reference: float = 0.0


@dataclass(frozen=True, slots=True)
class DriftResult:
    check: DailyCheck
    zero_drift: float   # signed, in the limits' unit
    span_drift: float
    passed: bool


@dataclass(frozen=True, slots=True)
class OutOfControlPeriod:
    """From `start` (the failed check) to `end` (the next passing check; None: not yet), with
    `last_passed` the last passing check before the failure (None: none known)."""

    start: np.datetime64
    end: np.datetime64 | None
    last_passed: np.datetime64 | None


def drift(check: DailyCheck, limits: DriftLimits) -> DriftResult:
    zero = check.zero_reading - check.zero_reference
    span = check.span_reading - check.span_reference
    if limits.unit is DriftUnit.PERCENT_FULL_SCALE:
        if not check.full_scale > 0:
            raise ValueError(f"check at {check.time}: full scale must be > 0, got {check.full_scale}")
        zero, span = zero / check.full_scale * 100.0, span / check.full_scale * 100.0
    ok = bool(np.isfinite(zero) and np.isfinite(span) and abs(zero) <= limits.zero and abs(span) <= limits.span)
    return DriftResult(check, float(zero), float(span), ok)


def out_of_control_periods(checks: Sequence[DailyCheck], limits: DriftLimits) -> list[OutOfControlPeriod]:
    """Out-of-control periods from a series of checks (sorted here by time)."""
    periods: list[OutOfControlPeriod] = []
    last_passed: np.datetime64 | None = None
    start: np.datetime64 | None = None
    for check in sorted(checks, key=lambda c: c.time):
        if drift(check, limits).passed:
            if start is not None:
                periods.append(OutOfControlPeriod(start, check.time, last_passed))
                start = None
            last_passed = check.time
        elif start is None:
            start = check.time
    if start is not None:
        periods.append(OutOfControlPeriod(start, None, last_passed))
    return periods


def out_of_control_mask(times: NDArray[np.datetime64], periods: Sequence[OutOfControlPeriod]) -> NDArray[np.bool_]:
    """True for each time in [start, end) of a period (an open period runs to the end)."""
    t = np.asarray(times).astype("datetime64[s]")
    mask = np.zeros(len(t), bool)
    for p in periods:
        inside = t >= np.datetime64(p.start, "s")
        if p.end is not None:
            inside &= t < np.datetime64(p.end, "s")
        mask |= inside
    return mask
