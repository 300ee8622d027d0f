"""The half-hourly flux record: what one averaging period gives (plain data, for the store)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class HalfHourFlux:
    """One averaging period's fluxes, flags and intermediate statistics.

    Units: H, LE W m-2; co2_flux umol m-2 s-1; h2o_flux mmol m-2 s-1; tau N m-2 (kg m-1 s-2);
    ustar, wind m s-1; L, footprint distances m; angles degrees; lags s; temperatures K;
    pressure Pa. `flag_*` is the Mauder and Foken (2004) 0/1/2 flag; `steady_*` and `itc` the test
    results in %. `*_scf` the spectral correction factors applied. NaN: not computable.
    Stamped at the START of the period (DOMAIN.md)."""

    start: datetime
    duration_s: float
    path: str
    n_records: int
    n_valid: int
    spikes: dict[str, int]
    rotation: str
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    lag_co2_s: float
    lag_h2o_s: float
    lag_co2_nominal: bool
    lag_h2o_nominal: bool
    mean_wind_ms: float
    wind_dir_deg: float
    air_temperature_k: float
    sonic_temperature_k: float
    pressure_pa: float
    air_density_kg_m3: float
    co2_mean: float
    h2o_mean: float
    ustar_ms: float
    tau_n_m2: float
    sigma_w_ms: float
    obukhov_m: float
    z_over_l: float
    h_w_m2: float
    le_w_m2: float
    co2_flux_umol_m2_s: float
    h2o_flux_mmol_m2_s: float
    h_scf: float
    le_scf: float
    co2_scf: float
    steady_h_pct: float
    steady_le_pct: float
    steady_co2_pct: float
    itc_pct: float
    flag_h: int
    flag_le: int
    flag_co2: int
    footprint_peak_m: float
    footprint_x70_m: float
    footprint_x90_m: float
    cov: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain values (the start as ISO 8601 with Z), for the store and the wire."""
        d = asdict(self)
        d["start"] = self.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        return d

    def wire_dict(self) -> dict:
        """as_dict() with every NaN (not computable) as None: the wire's `flux` record without its
        seq (JSON has no NaN; ghgnet.wire.FluxWire)."""
        def finite(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: finite(x) for k, x in v.items()}
            return v
        return {k: finite(v) for k, v in self.as_dict().items()}
