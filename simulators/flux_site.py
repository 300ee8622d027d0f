"""A simulated eddy-covariance site: 10-20 Hz wind, sonic temperature and CO2/H2O whose turbulent
fluxes are known, measured through a tilted sonic and an open- or closed-path analyzer with a
time lag, spikes and diagnostic drop-outs, so a test can check the processing recovers the truth.

Turbulence (pure numpy, seeded): independent unit-variance AR(1) series (integral time scale
`time_scale_s`, made by filtering white noise in the frequency domain, hence periodic) are mixed by
a one-factor model: every variable is mu + sigma (r W + sqrt(1 - r^2) e), W the standardised w and e
its own noise. The population covariances are then exactly u'w' = -u*^2, w'T' = H / (rho cp),
w'chi_v' = E / nd, w'chi_c' = Fc / nd (chi: dry mixing ratios, nd: dry-air molar density), and the
realised covariances of one half hour (the `truth`) are computed from the clean series before any
instrument effect.

Instruments: air temperature T and vapour give the sonic temperature Ts = T (1 + 0.51 q)
(Schotanus et al. 1983); an open-path analyzer sees molar densities chi * nd with nd = p / (R T
(1 + chi_v)) record by record (so the density effects that WPL removes are there); a closed-path
one sees wet mole fractions chi / (1 + chi_v). The sonic is tilted (pitch, roll) against the
terrain and the wind comes from `wind_dir_deg` in the sonic's axes. Faults: spikes, diagnostic
drop-outs (garbage values with a bad diagnostic), non-stationarity (correlated 30-min swings in w,
T and the gases), low turbulence (sigma_w / u* far from similarity).

This module's constants are its own (it does not import the processing), so a test comparing the
two checks one against the other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import numpy as np
from numpy.typing import NDArray

R = 8.314462618
M_DRY = 28.9645e-3
M_H2O = 18.01528e-3
CP_DRY = 1004.67


@dataclass(frozen=True, slots=True)
class FluxSiteSpec:
    """One half hour of a site: turbulence, true fluxes, the instruments and the faults.

    Fluxes: h_w_m2 (W m-2), le_w_m2 (W m-2), co2_flux (umol m-2 s-1). Means: air temperature (K),
    pressure (Pa), vapour and CO2 dry mixing ratios (mmol/mol, umol/mol). Angles in degrees, lags in
    seconds. `spike_fraction`: share of records with a spike per variable; `dropout_fraction`:
    share of records with a bad diagnostic (in bursts of 0.5 s)."""

    fs_hz: float = 20.0
    duration_s: float = 1800.0
    path: str = "open"
    mean_wind_ms: float = 3.0
    wind_dir_deg: float = 30.0
    sonic_pitch_deg: float = 2.0
    sonic_roll_deg: float = 0.5
    ustar_ms: float = 0.4
    sigma_w_over_ustar: float = 1.3
    sigma_u_over_ustar: float = 2.4
    sigma_v_over_ustar: float = 1.9
    time_scale_s: float = 1.0
    h_w_m2: float = 150.0
    le_w_m2: float = 200.0
    co2_flux: float = -10.0
    correlation: float = 0.5
    temperature_k: float = 293.15
    pressure_pa: float = 101325.0
    h2o_mmol_mol: float = 12.0
    co2_umol_mol: float = 410.0
    lag_s: float = 0.3
    spike_fraction: float = 0.0005
    dropout_fraction: float = 0.005
    nonstationary: bool = False

    def __post_init__(self) -> None:
        if self.path not in ("open", "closed"):
            raise ValueError(f"flux site: path {self.path!r} is not 'open' or 'closed'")
        if not 0 < self.correlation < 1:
            raise ValueError(f"flux site: correlation must be in (0, 1), got {self.correlation}")


@dataclass(frozen=True, slots=True)
class FluxTruth:
    """The realised turbulent fluxes of the clean series (before any instrument effect)."""

    h_w_m2: float
    le_w_m2: float
    co2_flux_umol_m2_s: float
    h2o_flux_mmol_m2_s: float
    ustar_ms: float
    w_t: float
    air_density_kg_m3: float


@dataclass(frozen=True, slots=True)
class SimulatedHalfHour:
    """What the instruments recorded (columns by name, the units of FluxBlock) and the truth.

    Columns: u, v, w (m/s), ts (K), co2, h2o (open: mmol m-3; closed: umol/mol and mmol/mol wet),
    pressure_pa, sonic_diag and gas_diag (0: good)."""

    start: datetime
    fs_hz: float
    columns: dict[str, NDArray[np.float64]]
    truth: FluxTruth
    spec: FluxSiteSpec


def _ar1(rng: np.random.Generator, count: int, n: int, fs_hz: float, time_scale_s: float) -> NDArray[np.float64]:
    """`count` independent unit-variance AR(1) series of n points (periodic, via the FFT)."""
    phi = np.exp(-1.0 / (time_scale_s * fs_hz))
    white = rng.standard_normal((count, n))
    f = np.fft.rfftfreq(n)
    gain = 1.0 / (1.0 - phi * np.exp(-2j * np.pi * f))
    x = np.fft.irfft(np.fft.rfft(white, axis=1) * gain, n, axis=1)
    x -= x.mean(axis=1, keepdims=True)
    return x / x.std(axis=1, keepdims=True)


def _rotation(pitch_deg: float, roll_deg: float, yaw_deg: float) -> NDArray[np.float64]:
    """Sonic-from-terrain matrix: the wind vector in the sonic's axes = M @ vector in the
    streamline frame (x along the mean wind)."""
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    return ry @ rx @ rz


def simulate_half_hour(spec: FluxSiteSpec, seed: int, start: datetime | None = None) -> SimulatedHalfHour:
    """One half hour of the site (seeded: the same spec and seed give the same records)."""
    start = start or datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
    rng = np.random.default_rng([seed, int(start.timestamp()) // 60])
    n = int(round(spec.duration_s * spec.fs_hz))
    lat = _ar1(rng, 6, n, spec.fs_hz, spec.time_scale_s)
    big_w, e_u, e_v, e_t, e_q, e_c = lat

    t_mean = spec.temperature_k
    chi_v_mean = spec.h2o_mmol_mol * 1e-3
    nd_mean = spec.pressure_pa / (R * t_mean * (1 + chi_v_mean))
    rho = nd_mean * (M_DRY + chi_v_mean * M_H2O)
    q_mean = nd_mean * chi_v_mean * M_H2O / rho
    cp = CP_DRY * (1 + 0.84 * q_mean)
    lam = 2.501e6 - 2370.0 * (t_mean - 273.15)

    sw = spec.sigma_w_over_ustar * spec.ustar_ms
    su = spec.sigma_u_over_ustar * spec.ustar_ms
    r_uw = -spec.ustar_ms**2 / (su * sw)
    r = spec.correlation

    def scalar(mean: float, flux_kin: float, noise: NDArray[np.float64]) -> NDArray[np.float64]:
        sign = 1.0 if flux_kin >= 0 else -1.0
        sigma = abs(flux_kin) / (r * sw) if flux_kin else 1e-6
        series = mean + sigma * (sign * r * big_w + np.sqrt(1 - r * r) * noise)
        if spec.nonstationary:
            # a swing over the half hour, against the flux: its covariance with w's swing is twice the
            # turbulent flux and of the other sign, so the 5-min covariances disagree with the 30-min one
            series = series - sign * swing_amp * sigma * swing
        return series

    swing = np.sin(2 * np.pi * np.arange(n) / n)
    swing_amp = np.sqrt(4 * r)
    w = sw * big_w
    u = spec.mean_wind_ms + su * (r_uw * big_w + np.sqrt(1 - r_uw**2) * e_u)
    v = spec.sigma_v_over_ustar * spec.ustar_ms * e_v
    t = scalar(t_mean, spec.h_w_m2 / (rho * cp), e_t)
    e_flux = spec.le_w_m2 / (lam * M_H2O)  # mol m-2 s-1
    chi_v = scalar(chi_v_mean, e_flux / nd_mean, e_q)
    chi_c = scalar(spec.co2_umol_mol, spec.co2_flux / nd_mean, e_c)  # umol/mol

    def cov(a, b):
        return float(np.mean((a - a.mean()) * (b - b.mean())))

    truth = FluxTruth(
        h_w_m2=rho * cp * cov(w, t), le_w_m2=lam * M_H2O * nd_mean * cov(w, chi_v),
        co2_flux_umol_m2_s=nd_mean * cov(w, chi_c), h2o_flux_mmol_m2_s=nd_mean * cov(w, chi_v) * 1e3,
        ustar_ms=(cov(u, w) ** 2 + cov(v, w) ** 2) ** 0.25, w_t=cov(w, t), air_density_kg_m3=rho)

    if spec.nonstationary:
        w = w + swing_amp * sw * swing

    vec = _rotation(spec.sonic_pitch_deg, spec.sonic_roll_deg, spec.wind_dir_deg) @ np.vstack([u, v, w])
    nd = spec.pressure_pa / (R * t * (1 + chi_v))
    q = nd * chi_v * M_H2O / (nd * (M_DRY + chi_v * M_H2O))
    ts = t * (1 + 0.51 * q)
    if spec.path == "open":
        co2 = chi_c * 1e-6 * nd * 1e3
        h2o = chi_v * nd * 1e3
    else:
        co2 = chi_c / (1 + chi_v)
        h2o = 1e3 * chi_v / (1 + chi_v)
    lag = int(round(spec.lag_s * spec.fs_hz))
    co2, h2o = np.roll(co2, lag), np.roll(h2o, lag)

    cols = {"u": vec[0], "v": vec[1], "w": vec[2], "ts": ts, "co2": co2, "h2o": h2o}
    for name, x in cols.items():
        hits = rng.random(n) < spec.spike_fraction
        x[hits] += rng.choice([-1.0, 1.0], hits.sum()) * rng.uniform(8, 15, hits.sum()) * x.std()
    sonic_diag = np.zeros(n, dtype=np.int64)
    gas_diag = np.zeros(n, dtype=np.int64)
    burst = max(int(0.5 * spec.fs_hz), 1)
    for diag, names in ((sonic_diag, ("u", "v", "w", "ts")), (gas_diag, ("co2", "h2o"))):
        starts = np.flatnonzero(rng.random(n) < spec.dropout_fraction / burst)
        for s in starts:
            diag[s:s + burst] = 1
        for name in names:
            cols[name][diag != 0] = rng.uniform(-999, 999, int((diag != 0).sum()))
    cols["pressure_pa"] = np.full(n, spec.pressure_pa)
    cols["sonic_diag"] = sonic_diag.astype(np.float64)
    cols["gas_diag"] = gas_diag.astype(np.float64)
    return SimulatedHalfHour(start, spec.fs_hz, cols, truth, spec)


def simulate_day(spec: FluxSiteSpec, seed: int, day: datetime, half_hours: int = 48) -> list[SimulatedHalfHour]:
    """A run of half hours with a diurnal cycle: heat and CO2 uptake follow the sun (sin of the hour,
    a small night-time release and stable-ish nights with less wind)."""
    out = []
    for i in range(half_hours):
        hour = i / 2 + 0.25
        sun = max(np.sin(np.pi * (hour - 6) / 12), 0.0)
        s = replace(spec, h_w_m2=-20 + 220 * sun, le_w_m2=20 + 280 * sun, co2_flux=3.0 - 18.0 * sun,
                    mean_wind_ms=2.0 + 2.0 * sun, ustar_ms=0.2 + 0.3 * sun)
        out.append(simulate_half_hour(s, seed, day + timedelta(minutes=30 * i)))
    return out
