"""CSV export of the station's data (pure formatting of rows the store yields).

Minute level columns: time_utc (start of the minute, UTC), station, device, stream, seq, then per
species present (co2, ch4, co, n2o in that order) `<sp>_mean`, `<sp>_std`, `<sp>_n`,
`<sp>_raw_mean` (dry, uncalibrated), `<sp>_cal_mean` (calibrated, empty while uncalibrated), then
h2o (%, minute mean), n_total (samples in the minute), flag (ICOS U/N), reasons (`;`-separated
codes), calibration_id.
Raw level columns: time_utc, station, device, stream, flushing, status, status_ok, status_flags,
then one column per quantity (co2 ppm, co2_dry ppm, ch4 ppb, ..., h2o %, cavity_pressure Torr, ...).
Missing values are empty cells.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import TextIO

from station_agent.reading import SPECIES

SPECIES_FIELDS = ("mean", "std", "n", "raw_mean", "cal_mean")


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(round(v, 6))
    return str(v)


def minute_columns(species: Iterable[str]) -> list[str]:
    cols = ["time_utc", "station", "device", "stream", "seq"]
    for sp in species:
        cols += [f"{sp}_{f}" for f in SPECIES_FIELDS]
    return cols + ["h2o", "n_total", "flag", "reasons", "calibration_id"]


def write_minute_csv(rows: list[dict], station: str, out: TextIO) -> int:
    present = {sp for r in rows for sp in r["species"]}
    species = [sp for sp in SPECIES if sp in present] + sorted(present - set(SPECIES))
    w = csv.writer(out, lineterminator="\n")
    w.writerow(minute_columns(species))
    for r in rows:
        line = [r["time"], station, r["device"], r["stream"], r["seq"]]
        for sp in species:
            s = r["species"].get(sp) or {}
            line += [s.get(f) for f in SPECIES_FIELDS]
        line += [r["h2o"], r["n_total"], r["flag"], ";".join(r["reasons"]), r["calibration_id"]]
        w.writerow([_cell(v) for v in line])
    return len(rows)


def write_raw_csv(rows: Iterator[dict], station: str, out: TextIO, quantities: list[str]) -> int:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(
        ["time_utc", "station", "device", "stream", "flushing", "status", "status_ok", "status_flags"]
        + quantities
    )
    n = 0
    for r in rows:
        w.writerow(
            [_cell(v) for v in (r["time"], station, r["device"], r["stream"], r["flushing"], r["status"],
                                r["status_ok"], ";".join(r["status_flags"]))]
            + [_cell(r["values"].get(q)) for q in quantities]
        )
        n += 1
    return n
