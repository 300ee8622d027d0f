"""One averaging period from raw 10-20 Hz arrays to a `HalfHourFlux`, step by step (EddyPro's order,
DOMAIN.md): diagnostics filtering, despiking, tilt correction, (closed path) dry mixing ratios, time
lags, detrending, covariances, spectral correction, humidity (Schotanus) and density (WPL)
corrections, stability, quality tests and flags, footprint. Pure: arrays in, a record out."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from station_agent.processing.flux.air import M_H2O, air_state, air_temperature_flux
from station_agent.processing.flux.density import dry_mixing_ratio, wpl_open_path
from station_agent.processing.flux.despike import despike
from station_agent.processing.flux.detrend import Detrending, covariance, fluctuations
from station_agent.processing.flux.footprint import kljun_footprint
from station_agent.processing.flux.quality import flag_012, itc_pct, steady_state_pct
from station_agent.processing.flux.record import HalfHourFlux
from station_agent.processing.flux.rotation import PlanarFit, double_rotation, planar_fit_rotation
from station_agent.processing.flux.spectral import SensorLayout, correction_factor
from station_agent.processing.flux.timelag import find_lag, shift

KAPPA = 0.4
G = 9.80665


@dataclass(frozen=True, slots=True)
class FluxBlock:
    """Raw records of one period, all arrays of one length.

    u, v, w (m/s, sonic axes), ts sonic temperature (K); open path: co2 and h2o molar densities
    (mmol m-3); closed path: wet mole fractions co2 (umol/mol) and h2o (mmol/mol); pressure (Pa,
    scalar or per record); sonic_ok / gas_ok: the diagnostic words' verdicts (None: all good)."""

    start: datetime
    fs_hz: float
    u: NDArray[np.float64]
    v: NDArray[np.float64]
    w: NDArray[np.float64]
    ts: NDArray[np.float64]
    co2: NDArray[np.float64]
    h2o: NDArray[np.float64]
    pressure_pa: float | NDArray[np.float64]
    sonic_ok: NDArray[np.bool_] | None = None
    gas_ok: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        n = len(self.w)
        for name in ("u", "v", "ts", "co2", "h2o", "sonic_ok", "gas_ok"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"flux block: {name} has {len(arr)} records, w has {n}")
        if not np.ndim(self.pressure_pa) == 0 and len(self.pressure_pa) != n:
            raise ValueError(f"flux block: pressure_pa has {len(self.pressure_pa)} records, w has {n}")
        if self.fs_hz <= 0:
            raise ValueError(f"flux block: fs_hz must be > 0, got {self.fs_hz}")


@dataclass(frozen=True, slots=True)
class LagWindow:
    """Where to look for a gas's lag (s) and the nominal lag used when no clear peak is found."""

    min_s: float = 0.0
    max_s: float = 1.0
    nominal_s: float = 0.2


@dataclass(frozen=True, slots=True)
class FluxSettings:
    """A site's processing settings: analyzer path, heights (m above ground), site latitude,
    rotation, detrending, lag windows, despiking thresholds, the sensor layout for the spectral
    correction, boundary-layer height for the footprint, the least fraction of valid records."""

    path: Literal["open", "closed"] = "open"
    measurement_height_m: float = 3.0
    displacement_m: float = 0.0
    latitude_deg: float = 45.0
    rotation: Literal["double", "planar"] = "double"
    planar_fit: PlanarFit | None = None
    detrending: Detrending = "block"
    co2_lag: LagWindow = field(default_factory=LagWindow)
    h2o_lag: LagWindow = field(default_factory=LagWindow)
    despike_sd: float = 3.5
    despike_sd_w: float = 5.0
    layout: SensorLayout = field(default_factory=SensorLayout)
    blh_m: float = 1000.0
    north_offset_deg: float = 0.0
    min_valid_fraction: float = 0.9

    def __post_init__(self) -> None:
        if self.path not in ("open", "closed"):
            raise ValueError(f"flux settings: path {self.path!r} is not 'open' or 'closed'")
        if self.rotation == "planar" and self.planar_fit is None:
            raise ValueError("flux settings: rotation 'planar' needs a planar_fit (fit_planar over many periods)")
        if self.rotation not in ("double", "planar"):
            raise ValueError(f"flux settings: rotation {self.rotation!r} is not 'double' or 'planar'")
        if self.measurement_height_m <= self.displacement_m:
            raise ValueError("flux settings: measurement_height_m must be above displacement_m")


def process_half_hour(block: FluxBlock, settings: FluxSettings) -> HalfHourFlux:
    """The period's fluxes, flags and statistics (see the module's docstring for the steps). A
    period without enough valid records gives NaN fluxes and flag 2 (numpy's warnings about means
    of nothing are expected there and silenced)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return _process(block, settings)


def _process(block: FluxBlock, settings: FluxSettings) -> HalfHourFlux:
    fs = block.fs_hz
    n = len(block.w)
    sonic_ok = np.ones(n, bool) if block.sonic_ok is None else np.asarray(block.sonic_ok, bool)
    gas_ok = np.ones(n, bool) if block.gas_ok is None else np.asarray(block.gas_ok, bool)

    def filtered(x, ok):  # diagnostics filtering: a record the instrument disowns is missing
        x = np.asarray(x, dtype=np.float64)
        return np.where(ok & np.isfinite(x), x, np.nan)

    raw = {"u": filtered(block.u, sonic_ok), "v": filtered(block.v, sonic_ok), "w": filtered(block.w, sonic_ok),
           "ts": filtered(block.ts, sonic_ok), "co2": filtered(block.co2, gas_ok), "h2o": filtered(block.h2o, gas_ok)}
    spikes = {}
    for name, x in raw.items():
        raw[name], spikes[name] = despike(x, fs, k=settings.despike_sd_w if name == "w" else settings.despike_sd)
    valid = ~np.isnan(np.column_stack(list(raw.values()))).any(axis=1)
    n_valid = int(valid.sum())

    if settings.rotation == "planar":
        rot = planar_fit_rotation(raw["u"], raw["v"], raw["w"], settings.planar_fit)
    else:
        rot = double_rotation(raw["u"], raw["v"], raw["w"])
    u, v, w = rot.u, rot.v, rot.w
    um, vm = np.nanmean(raw["u"]), np.nanmean(raw["v"])
    wind_dir = float((settings.north_offset_deg - np.degrees(np.arctan2(vm, um)) + 180.0) % 360.0)

    co2, h2o = raw["co2"], raw["h2o"]
    if settings.path == "closed":  # point by point, before the lag: both come from one cell
        co2, h2o = dry_mixing_ratio(co2, h2o * 1e-3), dry_mixing_ratio(h2o, h2o * 1e-3)
    lag_c = find_lag(w, co2, fs, **_window(settings.co2_lag))
    lag_v = find_lag(w, h2o, fs, **_window(settings.h2o_lag))
    co2_l, h2o_l = shift(co2, lag_c.samples), shift(h2o, lag_v.samples)

    fl = {k: fluctuations(x, settings.detrending) for k, x in
          {"u": u, "v": v, "w": w, "ts": raw["ts"], "co2": co2_l, "h2o": h2o_l}.items()}
    cov = {f"w_{k}": covariance(fl["w"], fl[k]) for k in ("u", "v", "w", "ts", "co2", "h2o")}
    ts_mean = float(np.nanmean(raw["ts"]))
    p = float(np.nanmean(block.pressure_pa))
    h2o_mean, co2_mean = float(np.nanmean(h2o_l)), float(np.nanmean(co2_l))

    mean_wind = float(np.nanmean(u))
    ustar = float((cov["w_u"] ** 2 + cov["w_v"] ** 2) ** 0.25)
    sigma_w = float(np.sqrt(cov["w_w"]))
    z = settings.measurement_height_m - settings.displacement_m
    obukhov = -(ustar**3) * ts_mean / (KAPPA * G * cov["w_ts"]) if cov["w_ts"] else float("inf")
    zl = z / obukhov

    period = n / fs
    cf_h = correction_factor(z, mean_wind, zl, fs, period, SensorLayout(
        sonic_path_m=settings.layout.sonic_path_m, sonic_tau_s=settings.layout.sonic_tau_s))
    cf_gas = correction_factor(z, mean_wind, zl, fs, period, settings.layout)
    w_ts, w_c, w_v = cov["w_ts"] * cf_h, cov["w_co2"] * cf_gas, cov["w_h2o"] * cf_gas

    if settings.path == "open":
        air = air_state(ts_mean, p, vapour_mol_m3=h2o_mean * 1e-3)
        w_nv = w_v * 1e-3
        for _ in range(2):  # Schotanus needs E, WPL needs w'T': two rounds converge
            w_t = air_temperature_flux(w_ts, w_nv, air)
            fc, w_nv = wpl_open_path(w_c * 1e-3, w_v * 1e-3, w_t, co2_mean * 1e-3, air)
        e = w_nv
    else:
        air = air_state(ts_mean, p, vapour_mole_fraction=h2o_mean * 1e-3 / (1 + h2o_mean * 1e-3))
        e = air.dry_mol_m3 * w_v * 1e-3
        fc = air.dry_mol_m3 * w_c * 1e-6
        w_t = air_temperature_flux(w_ts, e, air)

    tau = air.density_kg_m3 * ustar**2
    h = air.density_kg_m3 * air.cp * w_t
    le = air.latent_heat * M_H2O * e

    st = {k: steady_state_pct(fl["w"], fl[k]) for k in ("ts", "h2o", "co2")}
    itc = itc_pct(sigma_w, ustar, zl, settings.latitude_deg)
    fp = kljun_footprint(z, mean_wind, ustar, obukhov, settings.blh_m)
    enough = n_valid >= settings.min_valid_fraction * n

    def usable(x: float) -> float:
        return float(x) if enough else float("nan")

    def flag(steady: float) -> int:
        return flag_012(steady, itc) if enough else 2

    return HalfHourFlux(
        start=block.start, duration_s=period, path=settings.path, n_records=n, n_valid=n_valid, spikes=spikes,
        rotation=settings.rotation, yaw_deg=rot.yaw_deg, pitch_deg=rot.pitch_deg, roll_deg=rot.roll_deg,
        lag_co2_s=lag_c.samples / fs, lag_h2o_s=lag_v.samples / fs,
        lag_co2_nominal=lag_c.nominal_used, lag_h2o_nominal=lag_v.nominal_used,
        mean_wind_ms=mean_wind, wind_dir_deg=wind_dir, air_temperature_k=air.temperature_k,
        sonic_temperature_k=ts_mean, pressure_pa=p, air_density_kg_m3=air.density_kg_m3,
        co2_mean=co2_mean, h2o_mean=h2o_mean, ustar_ms=usable(ustar), tau_n_m2=usable(tau),
        sigma_w_ms=sigma_w, obukhov_m=float(obukhov), z_over_l=float(zl),
        h_w_m2=usable(h), le_w_m2=usable(le), co2_flux_umol_m2_s=usable(fc * 1e6), h2o_flux_mmol_m2_s=usable(e * 1e3),
        h_scf=cf_h, le_scf=cf_gas, co2_scf=cf_gas,
        steady_h_pct=st["ts"], steady_le_pct=st["h2o"], steady_co2_pct=st["co2"], itc_pct=itc,
        flag_h=flag(st["ts"]), flag_le=flag(st["h2o"]), flag_co2=flag(st["co2"]),
        footprint_peak_m=fp.peak_m, footprint_x70_m=fp.x70_m, footprint_x90_m=fp.x90_m,
        cov=cov,
    )


def _window(w: LagWindow) -> dict[str, float]:
    return {"min_s": w.min_s, "max_s": w.max_s, "nominal_s": w.nominal_s}
