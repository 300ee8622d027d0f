"""Observations from central's store: afternoon hourly means and target-gas measurement errors.

`[observations] source = "store"` reads what central already derived (central/aggregation/worker.py) instead
of a CSV. The rules, in the order they are applied:

- Store and metadata: `[observations.store] central_config` names a central TOML config; its
  `[storage]` opens the store (SQLite file or PostgreSQL dsn, read only in practice: only queries
  run) and its `[stations.<id>]` give each station's timezone, place, role and inlet heights.
- Stations: `stations` when given (plus the background stations), else every station in the store.
- Inlet: `inlets[station]` when given, else the station's highest inlet with hourly data for the
  species (intake height from `inlet_heights_m`, else from a name like `inlet:100m`), the one a
  tall-tower inversion uses.
- Valid hours: hourly flag in `flags` (U automatic, O valid after manual QC; N too few minutes and
  K invalid after manual QC are left out) with a spike-free mean (`HourlyRow.mean`).
- Afternoon: hours whose start is between `afternoon_first_hour` and `afternoon_last_hour` in the
  station's own local time (IANA timezone, daylight saving honoured), both included, like the CSV
  path's window; and inside the flux period.
- Units: central stores CO2 in ppm and CH4, CO, N2O in ppb; values become ppm.
- Background: `background_stations`, else `background_file`, else the stations whose central role
  is "background"; their rows give the background exactly as in the CSV path.

Measurement uncertainty, per station (the rule; model-data mismatch and background error are added
later, as for the CSV path, in covariance.observation_error):

    u_station = rms(b) = sqrt(mean(b_i^2))         (target_statistic = "rms", the default)
             or std(b) with ddof = 1               (target_statistic = "std")

over the biases b_i (measured - assigned, species units converted to ppm) of every target run of
the station, any cylinder, between `target_window_days` before the period start and the period end,
when there are at least `target_min_runs` of them; otherwise u_station = `measurement_ppm`. RMS
keeps a persistent target offset in the error (what the network's compatibility is judged on),
std only the scatter. Each hour's own noise is added: u = sqrt(u_station^2 + repeatability^2),
repeatability being the hour's propagated standard error from central's aggregation (tiny next to
u_station for a working analyzer).

Data version: `[observations.store] version`, latest by default (each hour's newest version: the
reprocessed one where central reprocessed it, central/store/levels.py) or nrt (near real time).
The summary says which was read and, per station, the processing versions of the hours taken;
the written CSV carries each value's version and processing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from .config import StoreSource
from .observations import ObsTable, format_time

TO_PPM = {"co2": 1.0, "ch4": 1e-3, "co": 1e-3, "n2o": 1e-3}
"""Factor from the unit central stores a species in (CO2 ppm; CH4, CO, N2O ppb) to ppm."""


class StoreSourceError(ValueError):
    """The store or its central config cannot be used; the message names which and why."""


@dataclass(frozen=True)
class StationSite:
    """Where an observation was taken: central's metadata of the station and the inlet used."""

    station: str
    stream: str | None
    latitude: float | None
    longitude: float | None
    intake_height_m: float | None
    timezone: str
    role: str


@dataclass(frozen=True)
class MeasurementSigma:
    """A station's measurement 1-sigma (ppm) and where it came from ("targets" or "configured")."""

    sigma_ppm: float
    source: str
    target_runs: int


@dataclass
class StoreObservations:
    """Selected afternoon hourly means (background stations included) and how they were chosen."""

    table: ObsTable
    sites: dict[str, StationSite]
    measurement: dict[str, MeasurementSigma]
    background_stations: list[str]
    species: str
    store: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    version: str = "latest"
    """The data version read (latest or nrt)."""
    processing: dict[str, list[str]] = field(default_factory=dict)
    """Per station, the processing versions of the hours taken."""
    row_versions: list[tuple[int, str]] = field(default_factory=list)
    """(version, processing) of each observation, in the table's order."""

    def summary(self) -> dict:
        """JSON-ready description for the inversion's summary."""
        stations = {}
        for sid, site in sorted(self.sites.items()):
            m = self.measurement.get(sid)
            stations[sid] = {
                "stream": site.stream, "role": site.role, "timezone": site.timezone,
                "latitude": site.latitude, "longitude": site.longitude, "intake_height_m": site.intake_height_m,
                **self.counts.get(sid, {}),
                "measurement_sigma_ppm": None if m is None else m.sigma_ppm,
                "measurement_source": None if m is None else m.source,
                "target_runs": 0 if m is None else m.target_runs,
                "processing": self.processing.get(sid, []),
            }
        return {"store": self.store, "species": self.species, "version": self.version,
                "background_stations": self.background_stations, "stations": stations}


def target_sigma(bias_ppm: np.ndarray, statistic: str, min_runs: int) -> float | None:
    """The measurement 1-sigma from target biases (ppm), or None with fewer than `min_runs`."""
    b = np.asarray(bias_ppm, dtype=float)
    b = b[np.isfinite(b)]
    if b.size < max(min_runs, 2):
        return None
    if statistic == "rms":
        return float(np.sqrt(np.mean(b * b)))
    if statistic == "std":
        return float(np.std(b, ddof=1))
    raise ValueError(f"unknown target statistic {statistic!r} (rms or std)")


def measurement_sigma(bias_ppm: np.ndarray, src: StoreSource) -> MeasurementSigma:
    """The rule of the module docstring for one station's target biases (ppm)."""
    n = int(np.isfinite(np.asarray(bias_ppm, dtype=float)).sum())
    sigma = target_sigma(bias_ppm, src.target_statistic, src.target_min_runs) if src.from_targets else None
    if sigma is None:
        return MeasurementSigma(src.measurement_ppm, "configured", n)
    return MeasurementSigma(sigma, "targets", n)


def afternoon_hours(hour_start: np.ndarray, timezone: str, first_hour: int, last_hour: int) -> np.ndarray:
    """Hours (UTC starts, datetime64[s]) starting between first_hour and last_hour local time in
    `timezone`, both included."""
    from central.aggregation.hourly_stats import local_hour_and_day

    t = np.asarray(hour_start, dtype="datetime64[s]").astype(np.int64)
    local_hour, _ = local_hour_and_day(t, timezone)
    return (local_hour >= first_hour) & (local_hour <= last_hour)


def _inlet_name(name: str) -> str:
    return name if name.startswith("inlet:") else f"inlet:{name}"


def _choose_inlet(store, central, station: str, species: str, configured: str | None) -> str | None:
    from central.views import intake_height

    if configured is not None:
        return _inlet_name(configured)
    streams = [s for s, sp in store.hourly_series(station) if sp == species and s.startswith("inlet:")]
    if not streams:
        return None
    return max(streams, key=lambda s: (intake_height(central, station, s) or -1.0, s))


def open_central(path: Path):
    """(central config, open store) from a central config file; errors name the file."""
    from central.config import load_central_config
    from central.store import StoreError, open_store
    from ghgnet.config import ConfigError

    try:
        central = load_central_config(path)
    except ConfigError as exc:
        raise StoreSourceError("; ".join(exc.lines)) from None
    s = central.storage
    if s.backend == "sqlite" and not Path(s.path).is_file():
        # open_store would create an empty store: an inversion over nothing, silently
        raise StoreSourceError(f"{path}: storage.path: no central store at {s.path}")
    try:
        store = open_store(s.backend, path=s.path, dsn=s.dsn, schema=s.schema_name)
    except StoreError as exc:
        raise StoreSourceError(f"{path}: storage: {exc}") from None
    label = f"sqlite:{s.path}" if s.backend == "sqlite" else f"postgresql:schema={s.schema_name}"
    return central, store, label


def read_store_observations(
    src: StoreSource,
    inversion_species: str,
    start: datetime,
    end: datetime,
    first_hour: int,
    last_hour: int,
    background_stations: list[str],
    background_from_file: bool,
) -> StoreObservations:
    """Select the afternoon hourly means of [start, end) from central's store (module docstring)."""
    species = (src.species or inversion_species).lower()
    if species not in TO_PPM:
        raise StoreSourceError(f"species {species!r}: central stores {', '.join(TO_PPM)}; "
                               "set [observations.store] species")
    from central.views import intake_height

    scale = TO_PPM[species]
    central, store, label = open_central(src.central_config)
    try:
        in_store = [s.station for s in store.stations()]
        if background_stations or background_from_file:
            background = list(background_stations)
        else:
            background = sorted(sid for sid in set(in_store) | set(central.stations)
                                if central.station(sid).role == "background")
            if not background:
                raise StoreSourceError(
                    f"{src.central_config}: no station has role = \"background\"; name background_stations "
                    "or give background_file in [observations]")
        wanted = list(dict.fromkeys(list(src.stations) + background)) if src.stations else sorted(in_store)
        for sid in background:
            if sid not in wanted:
                wanted.append(sid)
        times, stations, values, sigmas, versions = [], [], [], [], []
        processing: dict[str, list[str]] = {}
        sites, measurement, counts = {}, {}, {}
        window_start = start - timedelta(days=src.target_window_days)
        for sid in wanted:
            meta = central.station(sid)
            stream = _choose_inlet(store, central, sid, species, src.inlets.get(sid))
            sites[sid] = StationSite(sid, stream, meta.latitude, meta.longitude,
                                     None if stream is None else intake_height(central, sid, stream),
                                     meta.timezone, meta.role)
            biases = [v.bias * scale for run in store.targets(sid, window_start, end)
                      for sp, v in run.values.items() if sp == species and v.bias is not None]
            measurement[sid] = measurement_sigma(np.array(biases, dtype=float), src)
            rows = [] if stream is None else store.hourly_versions(sid, start, end, src.version, stream, species)
            valid = [r for r in rows if r.flag in src.flags and r.mean is not None and np.isfinite(r.mean)]
            hour = np.array([np.datetime64(r.hour.astimezone(UTC).replace(tzinfo=None), "s") for r in valid],
                            dtype="datetime64[s]")
            keep = afternoon_hours(hour, meta.timezone, first_hour, last_hour) if hour.size else np.zeros(0, bool)
            counts[sid] = {"hours": len(rows), "valid": len(valid), "afternoon": int(keep.sum())}
            u = measurement[sid].sigma_ppm
            for r, t, k in zip(valid, hour, keep):
                if not k:
                    continue
                rep = 0.0 if r.repeatability is None or not np.isfinite(r.repeatability) else r.repeatability * scale
                times.append(t)
                stations.append(sid)
                values.append(float(r.mean) * scale)
                sigmas.append(float(np.hypot(u, rep)))
                versions.append((r.version, r.processing))
                if r.processing not in processing.setdefault(sid, []):
                    processing[sid].append(r.processing)
    finally:
        store.close()
    order = np.lexsort((np.array(stations, dtype=str), np.array(times, dtype="datetime64[s]")))
    table = ObsTable(np.array(times, dtype="datetime64[s]")[order], np.array(stations, dtype=str)[order],
                     np.array(values, dtype=float)[order], np.array(sigmas, dtype=float)[order])
    return StoreObservations(table, sites, measurement, background if not background_from_file else [],
                             species, label, counts, src.version, processing, [versions[i] for i in order])


def write_store_csv(path: Path, obs: StoreObservations) -> None:
    """The selected observations as the CSV path reads them (time_utc, station, value, uncertainty;
    ppm), with the station's place and inlet added: rerunnable with `source = "csv"`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["time_utc", "station", "value", "uncertainty", "latitude", "longitude",
                      "intake_height_m", "stream", "version", "processing"])
        t = obs.table
        levels = obs.row_versions or [(1, "station")] * len(t.time)
        for time, sid, v, u, (version, processing) in zip(t.time, t.station, t.value, t.uncertainty, levels):
            site = obs.sites[str(sid)]
            out.writerow([format_time(time), sid, f"{v:.6f}", f"{u:.6f}",
                          "" if site.latitude is None else site.latitude,
                          "" if site.longitude is None else site.longitude,
                          "" if site.intake_height_m is None else site.intake_height_m, site.stream or "",
                          version, processing])


def period_bounds(grid) -> tuple[datetime, datetime]:
    """[start, end) of a FluxGrid's period as aware UTC datetimes."""
    s = int(grid.step_start[0].astype("datetime64[s]").astype(np.int64))
    e = int(grid.step_end[-1].astype("datetime64[s]").astype(np.int64))
    return datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)
