"""Data out: minute records as CSV with their effective flags, hourly data as ICOS-L2-like CSV and
ObsPack-like netCDF (the column sets of ICOS L2 hourly files and NOAA GML ObsPack).

Minute CSV (`write_minute_csv`): one row per minute (the version asked for), ordered by time,
device, stream. Columns: time_utc (start of the minute), station, seq, store (the station
database the record came from, 32 hex digits; empty for a station older than store identities: a reinstalled station's seqs start
again at 1 under a new store), device, serial (the serial number of the instrument that measured
the record, at its time, from the registry's inventory history: central/fleet/registry.py; empty
when unknown), stream; per species present in the range
(co2, ch4, co, n2o first, others alphabetically) <sp>_mean, <sp>_std, <sp>_n, <sp>_raw_mean,
<sp>_cal_mean, <sp>_u (the standard uncertainty of the calibrated mean the station propagated:
calibration, repeatability, water correction, ghgnet.processing.uncertainty; empty when unknown,
e.g. uncalibrated) and <sp>_flag; then h2o (%), flag, reasons, station_flag, manual_flag_ids and
manual_reason. `station_flag` is the letter the station sent (U/N); `flag` is the effective one:
the station's letter overridden by the operators' manual flags that cover the whole record (its
time and stream, no species limit): H under a K, R under an O when the station's letter was
valid (`central.aggregation.hourly_stats.effective_minute_flags`, the rule the hourly aggregation uses).
`<sp>_flag` also takes flags limited to that species into account. `manual_flag_ids` and
`manual_reason` name the manual flags that set a letter of the row (ids and reasons joined by
" | "; `central-receiver flags` has who and when). Then the data level: calibration_id (the
calibration(s) whose coefficients made the values; `A~B` when interpolated in time between A and
B), version (1: near real time; higher: reprocessed, central/store/levels.py), processing (the
processing version: `station`, or `central-reprocess/<method> ghgnet <release>`) and reprocess_run
(the central run that made the version; empty for a station's). Which version of each minute is
exported is the caller's choice (`version`): latest (default: each minute's newest), nrt (its first)
or all (every version, oldest first).

ICOS-like CSV: `;`-separated, `#` comment lines first, then the columns
Site;SamplingHeight;Year;Month;Day;Hour;Minute;DecimalDate;<species>;Stdev;NbPoints;Flag;
InstrumentId;QualityId;Repeatability;<species>WithSpikes;StdevWithSpikes;NbPointsWithSpikes;NbSpikes;
Version;Processing;CalibrationId;Uncertainty;InstrumentSerial with -999.99 for a missing value; times are the START
of the hour, UTC; the value and Stdev leave spikes out (the *WithSpikes columns keep them, as ICOS L2
carries both). A comment line names the version read (latest or nrt) and the processing versions of
the rows; Version is the hour's version (1 near real time), Processing its processing version,
CalibrationId the calibrations of the hour's minutes (joined by |), Uncertainty the hour's standard
uncertainty (central/aggregation/hourly_stats.py: the minutes' systematic part kept, the random
part averaged; -999.99 when a minute's is unknown), InstrumentSerial the serial
numbers of the instruments whose minutes made the hour (" | " between two: central/fleet/serials.py;
"-" when unknown).

ObsPack-like netCDF: one `obs` dimension; `value` and `value_std_dev` in mol mol-1 (ObsPack's
unit; CO2 ppm * 1e-6, CH4/CO/N2O ppb * 1e-9), `nvalue`, `time` (seconds since 1970, start of the
hour), `time_components` (year, month, day, hour, minute, second), `latitude`, `longitude`,
`altitude` (station elevation + intake height, m), `intake_height`, `qcflag` (the ICOS letter),
`instrument_serial` (as InstrumentSerial above, "" when unknown), `value_u` (the hour's standard
uncertainty, as Uncertainty above, NaN when unknown) and `obspack_id`; and the data
level: `version`, `processing`, `calibration_id` per value, the global attribute `data_version`
(latest or nrt) and `processing` (the processing versions present).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ghgnet import species
from ghgnet.timeutil import iso_utc

from .aggregation.hourly_stats import decimal_year, effective_minute_flags
from .config import CentralConfig
from .fleet.registry import serial_at, serials_over_time
from .store.base import StoredMinute
from .store.hourly import HourlyRow, ManualFlag
from .store.levels import HourlyVersion
from .views import intake_height

MISSING = -999.99
SPECIES_ORDER = species.calibrated()
UNITS = {sp: species.get(sp).unit for sp in SPECIES_ORDER}
MOLE_FRACTION_SCALE = {sp: species.get(sp).mole_fraction_scale for sp in SPECIES_ORDER}
SPECIES_FIELDS = ("mean", "std", "n", "raw_mean", "cal_mean", "u")
MINUTE_CHUNK = 5000
"""Minute records given their effective flags together (bounded memory on long exports)."""


def _v(x: float | None, nd: int = 3) -> str:
    return f"{MISSING:.2f}" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


VERSIONS = ("latest", "nrt")
"""The versions an export reads: each value's newest (default) or its near-real-time one."""


def check_version(version: str, allowed: tuple[str, ...] = VERSIONS) -> str:
    if version not in allowed:
        raise ValueError(f"version {version!r}: choose {' or '.join(allowed)}")
    return version


def hourly_rows_for_export(store, station: str, species: str, start: datetime, end: datetime,
                           stream: str | None = None, version: str = "latest") -> list[HourlyVersion]:
    """The hourly rows of one species at `version` (latest or nrt), by stream then hour."""
    rows = store.hourly_versions(station, start, end, check_version(version), stream, species)
    return sorted(rows, key=lambda r: (r.stream, r.hour))


def _processings(rows: Iterable[Any]) -> str:
    return ", ".join(sorted({getattr(r, "processing", "station") for r in rows})) or "none"


def write_icos_csv(rows: list[HourlyRow], config: CentralConfig, station: str, species: str, out: TextIO,
                   *, serials: list[str] | None = None, version: str = "latest") -> int:
    """`serials`: per row, the serial numbers of the instrument(s) that measured it (central/fleet/serials.py),
    written as the last column InstrumentSerial ("-" when unknown); `version`: which version was read."""
    meta = config.station(station)
    unit = UNITS.get(species, "")
    out.write(f"# ICOS-L2-like hourly {species} ({unit}) of station {station}, network {config.central.name}\n")
    out.write("# times: start of the hour, UTC; missing values: -999.99; value/Stdev/NbPoints without spikes\n")
    out.write("# Flag: U/N before manual QC, O/K after manual QC; QualityId: 1 valid, 2 invalid\n")
    out.write(f"# version: {version} (latest: each hour's newest version; nrt: near real time); "
              f"processing: {_processings(rows)}\n")
    w = csv.writer(out, delimiter=";", lineterminator="\n")
    w.writerow(["Site", "SamplingHeight", "Year", "Month", "Day", "Hour", "Minute", "DecimalDate", species, "Stdev",
                "NbPoints", "Flag", "InstrumentId", "QualityId", "Repeatability", f"{species}WithSpikes",
                "StdevWithSpikes", "NbPointsWithSpikes", "NbSpikes", "Version", "Processing", "CalibrationId",
                "Uncertainty", "InstrumentSerial"])
    dec = decimal_year(np.array([int(r.hour.timestamp()) for r in rows], dtype=np.int64))
    for r, d, serial in zip(rows, dec, serials or [""] * len(rows)):
        h = intake_height(config, station, r.stream)
        w.writerow([station.upper(), _v(h, 1), r.hour.year, r.hour.month, r.hour.day, r.hour.hour, r.hour.minute,
                    f"{d:.6f}", _v(r.mean), _v(r.std), r.n, r.flag, meta.instrument_id or "-",
                    1 if r.flag in ("U", "O") else 2, _v(r.repeatability, 4), _v(r.mean_all), _v(r.std_all),
                    r.n_all, r.n_spikes, getattr(r, "version", 1), getattr(r, "processing", "station"),
                    "|".join(getattr(r, "calibration_ids", ())), _v(getattr(r, "u", None), 4), serial or "-"])
    return len(rows)


def write_obspack_nc(rows: list[HourlyRow], config: CentralConfig, station: str, species: str, path: Path,
                     *, serials: list[str] | None = None, version: str = "latest") -> int:
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
            "value_u": ("obs", np.array([np.nan if getattr(r, "u", None) is None else r.u for r in rows],
                                        dtype=float) * scale,
                        {"units": "mol mol-1", "long_name": "standard uncertainty of the hourly value "
                         "(calibration, repeatability, water correction)"}),
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
            "instrument_serial": ("obs", np.array(serials or [""] * n, dtype=object),
                                  {"long_name": "serial number(s) of the instrument(s) that measured the value"}),
            "obspack_id": ("obs", np.array([f"ghgnet~{species}_{station}_{r.stream.removeprefix('inlet:')}~"
                                            f"{r.hour:%Y%m%dT%H}" for r in rows], dtype=object)),
            "version": ("obs", np.array([getattr(r, "version", 1) for r in rows], dtype=np.int32),
                        {"long_name": "data version of the hour: 1 near real time, higher reprocessed"}),
            "processing": ("obs", np.array([getattr(r, "processing", "station") for r in rows], dtype=object),
                           {"long_name": "processing version"}),
            "calibration_id": ("obs", np.array(["|".join(getattr(r, "calibration_ids", ())) for r in rows],
                                               dtype=object), {"long_name": "calibrations of the hour's minutes"}),
        },
        attrs={"dataset_name": f"{species}_{station}_hourly", "network": config.central.name,
               "site_code": station, "species": species, "Conventions": "CF-1.8",
               "comment": "ghgnet central hourly aggregates; values stamped at the start of the hour",
               "data_version": version, "processing": _processings(rows)},
    )
    ds["time"].encoding.update({"dtype": "int64"})
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="netcdf4")
    return n


def _chunks(items: Iterable[StoredMinute], size: int) -> Iterator[list[StoredMinute]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def minute_flags(chunk: list[StoredMinute], flags: list[ManualFlag], species: str | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Effective flags of minute records (whole records when `species` is None, else of one
    species) and the index in `flags` of the decision that set each (-1: the station's letter)."""
    t = np.array([int(m.time.timestamp()) for m in chunk], dtype=np.int64)
    streams = np.array([m.stream for m in chunk], dtype=object)
    mine = [k for k, f in enumerate(flags) if f.species is None or (species is not None and f.species == species)]
    covered = [(t >= int(flags[k].time_from.timestamp())) & (t < int(flags[k].time_to.timestamp()))
               & (True if flags[k].stream is None else streams == flags[k].stream) for k in mine]
    letters, decided = effective_minute_flags(np.array([m.flag for m in chunk], dtype="<U1"), covered,
                                              [flags[k].flag for k in mine])
    return letters, np.array(mine + [-1], dtype=np.int64)[decided]  # decided == -1 picks the final -1


def _serials(store: Any, station: str, start: datetime) -> dict[str, list[tuple]]:
    """The station's instrument serials over time from `start` on: its latest inventory walked back
    through the device events stored since."""
    summary = next((s for s in store.stations() if s.station == station), None)
    inv = ((summary.status.details if summary is not None and summary.status else None) or {}).get("inventory") or {}
    current = {d: v.get("serial_number") for d, v in (inv.get("devices") or {}).items() if isinstance(v, dict)}
    return serials_over_time(current, store.events(station, start, datetime(9999, 1, 1, tzinfo=start.tzinfo)))


def write_minute_csv(store: Any, station: str, start: datetime, end: datetime, out: TextIO,
                     version: str = "latest") -> int:
    """Minute records of [start, end) at `version` (latest, nrt or all) as CSV with effective
    flags (columns: module docstring); returns the row count."""
    check_version(version, (*VERSIONS, "all"))
    found = store.minute_species(station, start, end)
    species = [s for s in SPECIES_ORDER if s in found] + sorted(s for s in found if s not in SPECIES_ORDER)
    flags = store.manual_flags(station, start, end)
    serials = _serials(store, station, start)
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["time_utc", "station", "seq", "store", "device", "serial", "stream"]
               + [f"{sp}_{f}" for sp in species for f in (*SPECIES_FIELDS, "flag")]
               + ["h2o", "flag", "reasons", "station_flag", "manual_flag_ids", "manual_reason",
                  "calibration_id", "version", "processing", "reprocess_run"])
    n = 0
    for chunk in _chunks(store.minute_versions(station, start, end, version), MINUTE_CHUNK):
        row_flag, row_by = minute_flags(chunk, flags, None)
        per_species = {sp: minute_flags(chunk, flags, sp) for sp in species}
        for i, m in enumerate(chunk):
            row: list[Any] = [iso_utc(m.time), m.station, m.seq, m.store or "", m.device,
                              serial_at(serials, m.device, m.time) or "", m.stream]
            by = {int(row_by[i])}
            for sp in species:
                s = m.species.get(sp)
                if s is None:
                    row += [""] * (len(SPECIES_FIELDS) + 1)
                    continue
                row += ["" if getattr(s, f) is None else getattr(s, f) for f in SPECIES_FIELDS]
                row.append(str(per_species[sp][0][i]))
                by.add(int(per_species[sp][1][i]))
            decided = [flags[k] for k in sorted(by - {-1})]
            row += ["" if m.h2o is None else m.h2o, str(row_flag[i]), "|".join(m.reasons), m.flag,
                    " | ".join(str(f.id) for f in decided), " | ".join(f.reason for f in decided),
                    m.calibration_id or "", m.version, m.processing, "" if m.run_id is None else m.run_id]
            w.writerow(row)
            n += 1
    return n
