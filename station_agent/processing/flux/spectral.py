"""Analytic spectral correction factor after Moncrieff et al. (1997), J. Hydrol. 188-189, 589-611:
CF = integral(Co(f)) / integral(Co(f) H(f)), with Co the model cospectrum of Kaimal et al. (1972)
as given by Moncrieff et al. and H the product of the transfer functions of the system.

Cospectrum (n = f z / u, z the height above displacement):
- z/L <= 0: n Co / cov = 12.92 n / (1 + 26.7 n)^1.375 for n < 0.54, 4.378 n / (1 + 3.8 n)^2.4 above;
- z/L > 0: n Co / cov = n / (A + B n^2.1), A = 0.284 (1 + 6.4 z/L)^0.75, B = 2.34 A^-1.1.
Transfer functions (gains on the cospectrum):
- block averaging over T (a high-pass): 1 - sin^2(pi f T) / (pi f T)^2 (Kaimal and Finnigan 1994;
  Rannik and Vesala 1999);
- first-order response of a sensor with time constant tau: 1 / sqrt(1 + (2 pi f tau)^2), for w and
  for the scalar;
- line averaging along a path p (f_p = f p / u): sonic w, Kaimal et al. (1968)
  (2 / (pi f_p)) (1 + exp(-2 pi f_p) / 2 - 3 (1 - exp(-2 pi f_p)) / (4 pi f_p)); scalar path
  (1 / (2 pi f_p)) (3 + exp(-2 pi f_p) - 4 (1 - exp(-2 pi f_p)) / (2 pi f_p)); each enters the
  cospectrum as its square root;
- lateral separation s between the sonic and the gas path: exp(-9.9 (f s / u)^1.5) (Moncrieff et
  al. 1997 after Kristensen and Jensen 1979).
Both cospectra, with every coefficient (unstable 12.92, 26.7, 1.375 below n = 0.54 and 4.378, 3.8,
2.4 above; stable A = 0.284 (1 + 6.4 z/L)^0.75, B = 2.34 A^-1.1, exponent 2.1; z/L > 0 is stable),
were checked against EddyPro's CospectraMoncrieff97 (LI-COR-Environmental/eddypro-engine,
src/src_common/bpcf_cospectral_models.f90, "Moncrieff et al. (1997), Eq 13-16"), which uses the
scalar form for T, H2O and CO2 alike, as here. The paper's own text was not available to the
search tools. The first-order gain, both path averaging functions, the separation term and the way
they combine (each sensor's transfer under a square root for a covariance) were checked against
ECPACK's frequency-response routine (van Dijk, Moene et al., EC_C_F01, after Moore 1986).
tests/station_agent/test_flux_corrections.py checks the behaviour: no loss gives CF = 1, each loss
raises CF, so do lower heights, faster wind and stable air.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class SensorLayout:
    """The measuring system for one flux: sonic path (m), gas path (m), sensor separation (m),
    sensor time constants (s); zeros mean an ideal system."""

    sonic_path_m: float = 0.0
    gas_path_m: float = 0.0
    separation_m: float = 0.0
    sonic_tau_s: float = 0.0
    gas_tau_s: float = 0.0


def kaimal_cospectrum(f: NDArray[np.float64], z_m: float, u_ms: float, z_over_l: float) -> NDArray[np.float64]:
    """Co(f) per unit covariance (1/Hz), the Kaimal (1972) form of Moncrieff et al. (1997)."""
    n = f * z_m / u_ms
    if z_over_l <= 0:
        nco = np.where(n < 0.54, 12.92 * n / (1 + 26.7 * n) ** 1.375, 4.378 * n / (1 + 3.8 * n) ** 2.4)
    else:
        a = 0.284 * (1 + 6.4 * z_over_l) ** 0.75
        b = 2.34 * a ** -1.1
        nco = n / (a + b * n**2.1)
    return nco / f


def _path_w(fp: NDArray[np.float64]) -> NDArray[np.float64]:
    x = 2 * np.pi * fp
    return (2 / (np.pi * fp)) * (1 + np.exp(-x) / 2 - 3 * (1 - np.exp(-x)) / (2 * x))


def _path_scalar(fp: NDArray[np.float64]) -> NDArray[np.float64]:
    x = 2 * np.pi * fp
    return (1 / x) * (3 + np.exp(-x) - 4 * (1 - np.exp(-x)) / x)


def transfer(f: NDArray[np.float64], u_ms: float, period_s: float, layout: SensorLayout) -> NDArray[np.float64]:
    """The system's cospectral transfer function H(f) (see the module's list)."""
    x = np.pi * f * period_s
    h = 1 - (np.sin(x) / x) ** 2
    for tau in (layout.sonic_tau_s, layout.gas_tau_s):
        if tau > 0:
            h = h / np.sqrt(1 + (2 * np.pi * f * tau) ** 2)
    if layout.sonic_path_m > 0:
        h = h * np.sqrt(np.clip(_path_w(f * layout.sonic_path_m / u_ms), 0, 1))
    if layout.gas_path_m > 0:
        h = h * np.sqrt(np.clip(_path_scalar(f * layout.gas_path_m / u_ms), 0, 1))
    if layout.separation_m > 0:
        h = h * np.exp(-9.9 * (f * layout.separation_m / u_ms) ** 1.5)
    return h


def correction_factor(z_m: float, u_ms: float, z_over_l: float, fs_hz: float, period_s: float,
                      layout: SensorLayout, *, points: int = 400) -> float:
    """Moncrieff et al. (1997) CF >= 1 for a flux measured with `layout`, integrated on a log grid
    from 1e-5 Hz to the Nyquist frequency; 1.0 when the wind or the stability is unusable."""
    if not (np.isfinite(u_ms) and u_ms > 0.05 and np.isfinite(z_over_l)):
        return 1.0
    f = np.logspace(-5, np.log10(fs_hz / 2), points)
    co = kaimal_cospectrum(f, z_m, u_ms, z_over_l)
    h = transfer(f, u_ms, period_s, layout)
    # integrate in ln f: integral Co df = integral f Co d(ln f)
    lnf = np.log(f)
    ideal = np.trapezoid(f * co, lnf)
    measured = np.trapezoid(f * co * h, lnf)
    return float(ideal / measured) if measured > 0 else 1.0
