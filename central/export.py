"""Hourly data out: ICOS-L2-like CSV and ObsPack-like netCDF (DOMAIN.md section 4).

ICOS-like CSV: `;`-separated, `#` comment lines first, then the columns
Site;SamplingHeight;Year;Month;Day;Hour;Minute;DecimalDate;<species>;Stdev;NbPoints;Flag;
InstrumentId;QualityId;Repeatability;<species>WithSpikes;StdevWithSpikes;NbPointsWithSpikes;NbSpikes
with -999.99 for a missing value; times are the START of the hour, UTC; the value and Stdev
leave spikes out (the *WithSpikes columns keep them, as ICOS L2 carries both).

ObsPack-like netCDF: one `obs` dimension; `value` and `value_std_dev` in mol mol-1 (ObsPack's
unit; CO2 ppm * 1e-6, CH4/CO/N2O ppb * 1e-9), `nvalue`, `time` (seconds since 1970, start of the
hour), `time_components` (year, month, day, hour, minute, second), `latitude`, `longitude`,
`altitude` (station elevation + intake height, m), `intake_height`, `qcflag` (the ICOS letter) and
`obspack_id`.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import TextIO

import numpy as np

from .aggregate import decimal_year
from .config import CentralConfig
from .store.hourly import HourlyRow
from .views import intake_height

MISSING = -999.99
MOLE_FRACTION_SCALE = {"co2": 1e-6, "ch4": 1e-9, "co": 1e-9, "n2o": 1e-9}
UNITS = {"co2": "ppm", "ch4": "ppb", "co": "ppb", "n2o": "ppb"}


def _v(x: float | None, nd: int = 3) -> str:
    return f"{MISSING:.2f}" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def hourly_rows_for_export(store, station: str, species: str, start: datetime, end: datetime,
                           stream: str | None = None) -> list[HourlyRow]:
    rows = store.hourly(station, start, end, stream, species)
    return sorted(rows, key=lambda r: (r.stream, r.hour))


def write_icos_csv(rows: list[HourlyRow], config: CentralConfig, station: str, species: str, out: TextIO) -> int:
    meta = config.station(station)
    unit = UNITS.get(species, "")
    out.write(f"# ICOS-L2-like hourly {species} ({unit}) of station {station}, network {config.central.name}\n")
    out.write("# times: start of the hour, UTC; missing values: -999.99; value/Stdev/NbPoints without spikes\n")
    out.write("# Flag: U/N before manual QC, O/K after manual QC; QualityId: 1 valid, 2 invalid\n")
    w = csv.writer(out, delimiter=";", lineterminator="\n")
    w.writerow(["Site", "SamplingHeight", "Year", "Month", "Day", "Hour", "Minute", "DecimalDate", species, "Stdev",
                "NbPoints", "Flag", "InstrumentId", "QualityId", "Repeatability", f"{species}WithSpikes",
                "StdevWithSpikes", "NbPointsWithSpikes", "NbSpikes"])
    dec = decimal_year(np.array([int(r.hour.timestamp()) for r in rows], dtype=np.int64))
    for r, d in zip(rows, dec):
        h = intake_height(config, station, r.stream)
        w.writerow([station.upper(), _v(h, 1), r.hour.year, r.hour.month, r.hour.day, r.hour.hour, r.hour.minute,
                    f"{d:.6f}", _v(r.mean), _v(r.std), r.n, r.flag, meta.instrument_id or "-",
                    1 if r.flag in ("U", "O") else 2, _v(r.repeatability, 4), _v(r.mean_all), _v(r.std_all),
                    r.n_all, r.n_spikes])
    return len(rows)


def write_obspack_nc(rows: list[HourlyRow], config: CentralConfig, station: str, species: str, path: Path) -> int:
    import xarray as xr

    meta = config.station(station)
    scale = MOLE_FRACTION_SCALE.get(species, 1.0)
    n = len(rows)
    t = np.array([int(r.hour.timestamp()) for r in rows], dtype=np.int64)
    comps = np.array([[r.hour.year, r.hour.month, r.hour.day, r.hour.hour, r.hour.minute, 0] for r in rows],
                     dtype=np.int32).reshape(n, 6)
    heights = np.array([np.nan if (h := intake_height(config, station, r.stream)) is None else h for r in rows])
    elev = np.nan if meta.altitude_m is None else meta.altitude_m

    def arr(name: str) -> np.ndarray:
        return np.array([np.nan if getattr(r, name) is None else getattr(r, name) for r in rows], dtype=float)

    ds = xr.Dataset(
        {
            "value": ("obs", arr("mean") * scale, {"units": "mol mol-1", "long_name": f"{species} mole fraction"}),
            "value_std_dev": ("obs", arr("std") * scale, {"units": "mol mol-1",
                                                          "long_name": "std of the minute means in the hour"}),
            "value_unc": ("obs", arr("repeatability") * scale, {"units": "mol mol-1",
                                                                 "long_name": "repeatability (propagated SEM)"}),
            "nvalue": ("obs", np.array([r.n for r in rows], dtype=np.int32), {"long_name": "minutes averaged"}),
            "time": ("obs", t, {"units": "seconds since 1970-01-01T00:00:00Z", "long_name": "start of the hour"}),
            "time_components": (("obs", "calendar_components"), comps,
                                {"long_name": "year, month, day, hour, minute, second (UTC, start of the hour)"}),
            "latitude": ("obs", np.full(n, np.nan if meta.latitude is None else meta.latitude),
                         {"units": "degrees_north"}),
            "longitude": ("obs", np.full(n, np.nan if meta.longitude is None else meta.longitude),
                          {"units": "degrees_east"}),
            "altitude": ("obs", elev + heights, {"units": "m", "long_name": "sample altitude above sea level"}),
            "intake_height": ("obs", heights, {"units": "m", "long_name": "height above ground"}),
            "qcflag": ("obs", np.array([r.flag for r in rows], dtype="U1"),
                       {"long_name": "ICOS flag: U/O valid, N/K invalid"}),
            "obspack_id": ("obs", np.array([f"ghgnet~{species}_{station}_{r.stream.removeprefix('inlet:')}~"
                                            f"{r.hour:%Y%m%dT%H}" for r in rows], dtype=object)),
        },
        attrs={"dataset_name": f"{species}_{station}_hourly", "network": config.central.name,
               "site_code": station, "species": species, "Conventions": "CF-1.8",
               "comment": "ghgnet central hourly aggregates; values stamped at the start of the hour"},
    )
    ds["time"].encoding.update({"dtype": "int64"})
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="netcdf4")
    return n
