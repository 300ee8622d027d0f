"""Daily zero/span checks of a CEMS analyzer, their drift against limits, and out-of-control periods.

A check injects zero gas and span gas; the error of each is reading - reference. Limits:
- `HJ75_LIMITS` (default): zero and span drift each within +-2.5 % of full scale, else out of
  control. UNVERIFIED: neither HJ 75-2017, HJ 76-2017 nor the MEE power-sector CO2 CEMS guideline was
  in the reference corpus. The 2.5 % F.S. comes from DOMAIN.md / the issue brief (HJ 76-2017's 24 h
  zero and span drift specification for gaseous CEMS, as remembered). Caveat to check against the
  text: HJ 75-2017 may set the out-of-control ("失控") limits of its daily QA wider than the 24 h drift
  specification (remembered as 5 % F.S. zero and 10 % F.S. span for gaseous CEMS, with 2.5 % the
  threshold that calls for a calibration); if so, set the limits per site (`DriftLimits`) until
  this is settled. CO2 is not among HJ 75-2017's named pollutants.
- `PART75_CO2_LIMITS`: US 40 CFR Part 75. Verified (section 75.24(a)(1), eCFR text): a daily
  calibration error beyond the specification of appendix B section 2.1.4 makes the monitor out of
  control; its data are not quality-assured (75.24(b)) and are substituted until the monitor passes
  again (75.24(c)(1)). UNVERIFIED: the value 1.0 % CO2 (absolute difference; twice appendix A's
  0.5 % CO2 certification limit) as remembered; appendices A and B were not in the corpus as text.

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
