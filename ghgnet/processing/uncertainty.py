"""The standard uncertainty of a calibrated value: minute and hour.

Combined in quadrature from independent parts (GUM, JCGM 100:2008, eq. 10, sensitivity 1 for
each additive part):

- calibration: the fit's coefficient covariance C carried to the value, u_cal^2 = g^T C g with
  g = (1, x, x^2, ...) the derivative of c0 + c1 x + c2 x^2 by the coefficients at the measured
  (raw, dry) value x (GUM eq. 13: propagation with correlated inputs). It holds the standards'
  assigned uncertainties and the scatter of their measured means when the fit was weighted
  (ghgnet.processing.calibration), the residual scatter when it was not.
- repeatability: std / sqrt(n) of the minute's valid samples (the standard error of its mean).
  The calibration's slope scales it only by ~1 (|c1 - 1| is a few per mille): ignored.
- water correction: `WATER_RELATIVE_U` of the correction applied, |dry - wet| = dry |a H + b H^2|
  (H the minute's H2O in %, a and b the water coefficients, ghgnet.processing.water).
  Source of the default 1 %: Rella et al. 2013 (AMT 6, 837; abstract checked in a stored copy)
  show dry values from the manufacturer's coefficients within the WMO/GAW goals (CO2 0.1 ppm) up
  to 1 % H2O, where the CO2 correction is 5.15 ppm at 420 ppm (G2401 factory coefficients): a
  bound of 0.1 / 5.15 = 1.9 % of the correction, taken as a rectangular distribution (GUM 4.3.7:
  u = a / sqrt(3)), 1.1 %, rounded to 1 %. Instrument-specific coefficients do better; Reum et al.
  2019 (AMT 12, 1013) show larger biases below 0.5 % H2O. Configurable: set it from the
  analyzer's own water-correction experiment.

An hour (`hourly_u`): the calibration part is systematic within the hour (every minute of it went
through the same fit, so the minutes' calibration errors are the same error) and does not average
down: the hour keeps the root mean square of its minutes' calibration parts. The water part is
treated alike (the coefficients' error is shared by all minutes). The random part (repeatability)
averages: sqrt(sum u_rep,i^2) / N over the N minutes, the standard error of the mean of N
independent minute means. The hour's u is the quadrature sum of the three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ghgnet.processing.water import WaterCoefficients

WATER_RELATIVE_U = 0.01
"""Standard uncertainty of the water correction as a fraction of the correction applied (see the
module docstring for the source). Configurable."""


@dataclass(frozen=True, slots=True)
class UncertaintyParts:
    """The standard uncertainty of one calibrated value and its parts, species units.
    `combined` is None when the calibration part is unknown (an uncalibrated value has none)."""

    calibration: float | None
    repeatability: float
    water: float

    @property
    def combined(self) -> float | None:
        if self.calibration is None:
            return None
        return combine(self.calibration, self.repeatability, self.water)


def combine(*parts: float) -> float:
    """Independent standard uncertainties in quadrature (GUM eq. 10 with sensitivities 1)."""
    return float(np.sqrt(np.sum(np.square(np.asarray(parts, dtype=np.float64)))))


def calibration_u(x: float, covariance: ArrayLike | None) -> float | None:
    """sqrt(g^T C g), g = (1, x, x^2, ...): the standard uncertainty of c0 + c1 x + ... at the
    measured value x from the coefficients' covariance C (lowest order first). None without C."""
    if covariance is None:
        return None
    c = np.asarray(covariance, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"covariance must be a square matrix, got shape {c.shape}")
    g = float(x) ** np.arange(c.shape[0])
    return float(np.sqrt(max(float(g @ c @ g), 0.0)))


def repeatability_u(std: float | None, n: int) -> float:
    """std / sqrt(n), the standard error of a mean of n samples; 0 when unknown (n < 2)."""
    if std is None or n < 2:
        return 0.0
    return float(std) / float(np.sqrt(n))


def water_u(dry: float, h2o_percent: float | None, coefficients: WaterCoefficients | None,
            relative: float = WATER_RELATIVE_U) -> float:
    """`relative` x |dry - wet| = relative x |dry (a H + b H^2)|: the uncertainty the water
    correction adds; 0 for a dried sample (no H2O reported) or no coefficients."""
    if h2o_percent is None or coefficients is None or not np.isfinite(h2o_percent):
        return 0.0
    h = float(h2o_percent)
    return abs(relative * float(dry) * (coefficients.a * h + coefficients.b * h * h))


def minute_parts(raw: float, std: float | None, n: int, covariance: ArrayLike | None,
                 h2o_percent: float | None = None, water: WaterCoefficients | None = None,
                 water_relative: float = WATER_RELATIVE_U) -> UncertaintyParts:
    """The parts of one calibrated minute's uncertainty: raw = the minute's raw dry mean."""
    return UncertaintyParts(
        calibration=calibration_u(raw, covariance),
        repeatability=repeatability_u(std, n),
        water=water_u(raw, h2o_percent, water, water_relative),
    )


def hourly_u(calibration: Sequence[float], repeatability: Sequence[float], water: Sequence[float]) -> float:
    """The standard uncertainty of an hour's mean of N minutes from its minutes' parts (see the
    module docstring): systematic parts by their root mean square, the random part as the
    standard error of the mean."""
    cal = np.asarray(calibration, dtype=np.float64)
    rep = np.asarray(repeatability, dtype=np.float64)
    wat = np.asarray(water, dtype=np.float64)
    n = rep.size
    if n == 0 or cal.size != n or wat.size != n:
        raise ValueError(f"one value per minute for each part: {cal.size}, {rep.size}, {wat.size}")
    return combine(float(np.sqrt(np.mean(cal**2))), float(np.sqrt(np.sum(rep**2))) / n,
                   float(np.sqrt(np.mean(wat**2))))


def hourly_u_from_minutes(u: Sequence[float], std: Sequence[float | None], n: Sequence[int]) -> float | None:
    """`hourly_u` from what a stored minute carries: its combined u, std and n. The random part is
    std / sqrt(n) (as the station computed it); the systematic part (calibration and water) is
    what remains of u: sqrt(u^2 - u_rep^2). None for an hour without minutes."""
    if len(u) == 0:
        return None
    rep = np.array([repeatability_u(s, k) for s, k in zip(std, n, strict=True)])
    tot = np.asarray(u, dtype=np.float64)
    systematic = np.sqrt(np.clip(tot**2 - rep**2, 0.0, None))
    return hourly_u(systematic, rep, np.zeros(rep.size))
