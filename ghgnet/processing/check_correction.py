"""Zero and span checks that correct: a zero check resets the offset, a span check the gain.

Practice followed (checked in the sources' text):
- Gas analyzers' zero-and-span procedure: zero gas first, then a span gas; the zero adjusts the
  offset and the span the gain, "to correct subsequent measurements" (Campbell Scientific EC150
  manual, zero and span procedure: drift "in gain and offset"); a span calibration "adjusts the
  instrument gain so the output of the instrument agrees with the concentration expected for span
  gas", the multipoint calibration curve staying the reference (Ecotech EC9830 manual, ch. 3,
  Level 1 span calibration). A check that only reports (Ecotech's "Level 2" span check) must not
  correct data: `correct = "none"`, the default.
- US 40 CFR 90.320 (NDIR CO2 analyzer): zero with zero-grade air or N2, span gases at 10-90 % of
  the range. HJ 75-2017's daily zero/span drift checks for CEMS: not checked here (text not
  available); the span level and frequency are configuration.

What a correction is, with f the response in force before the check (the last full calibration,
with the corrections made since; identity when uncalibrated) and x the raw dry reading:
- offset (zero check on a gas with assigned value z, read x_z): f'(x) = f(x) + (z - f(x_z)).
- gain (span check on a gas with assigned value s, read x_s): f'(x) = f(x) * s / f(x_s): the gain
  pivots at 0, so a reading of zero stays zero and the span gas reads its assigned value.
Both keep f a polynomial: the corrected coefficients are returned lowest order first, like every
calibration (ghgnet.processing.calibration), so `apply_calibration` applies them unchanged.

Order (documented for the station's CalibrationBook, which applies it): corrections stack in
time order on the calibration in force; a full calibration supersedes every correction made
before it (it re-determines offset and gain from the standards); a correction made after it
applies on top of it from the end of the check on. Reprocessing with coefficients interpolated
between two full calibrations replaces the near-real-time corrections in between (the
interpolation is the after-the-fact model of the drift the checks corrected in near real time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ghgnet.processing.calibration import calibrate

IDENTITY: tuple[float, ...] = (0.0, 1.0)
"""assigned = x: the response of an uncalibrated analyzer."""

MIN_SPAN_READING = 1e-9
"""A span reading (through f) at or below this cannot set a gain."""


@dataclass(frozen=True, slots=True)
class SpeciesCorrection:
    """One species of a check: what was read (raw) and what the response made of it, the
    assigned value, the offset added or the gain applied, and the corrected coefficients."""

    species: str
    raw: float
    before: float
    assigned: float
    offset: float
    gain: float
    coefficients: tuple[float, ...]


def corrected_species(species: str, kind: str, raw: float, assigned: float,
                      base: Sequence[float] | None) -> SpeciesCorrection:
    """The correction of one species. `base`: coefficients in force (None: identity)."""
    c = np.asarray(base if base is not None else IDENTITY, dtype=np.float64)
    if not (np.isfinite(raw) and np.isfinite(assigned)):
        raise ValueError(f"{species}: reading {raw!r} or assigned value {assigned!r} is not a number")
    before = float(calibrate(raw, c))
    if kind == "offset":
        d = assigned - before
        new = c.copy()
        new[0] += d
        return SpeciesCorrection(species, raw, before, assigned, d, 1.0, tuple(float(v) for v in new))
    if kind == "gain":
        if before <= MIN_SPAN_READING:
            raise ValueError(f"{species}: span gas reads {before:g} through the response: no gain can be set")
        g = assigned / before
        return SpeciesCorrection(species, raw, before, assigned, 0.0, g, tuple(float(v) for v in c * g))
    raise ValueError(f"correction kind must be offset or gain, got {kind!r}")


def check_correction(kind: str, raw: Mapping[str, float], assigned: Mapping[str, float],
                     base: Mapping[str, Sequence[float]] | None) -> dict[str, SpeciesCorrection]:
    """Every species read on the check gas that has an assigned value. `base`: the coefficients in
    force per species (None or a species left out: identity)."""
    out = {}
    for sp, x in raw.items():
        if sp in assigned and x is not None and np.isfinite(x):
            out[sp] = corrected_species(sp, kind, float(x), float(assigned[sp]), (base or {}).get(sp))
    if not out:
        raise ValueError(f"{kind} check: no species both read and assigned (read {sorted(raw)},"
                         f" assigned {sorted(assigned)})")
    return out
