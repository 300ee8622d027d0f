"""CSV export of the station's data (pure formatting of rows the store yields).

Minute level columns: time_utc (start of the minute, UTC), station, device, stream, seq, then per
species present (co2, ch4, co, n2o in that order) `<sp>_mean`, `<sp>_std`, `<sp>_n`,
`<sp>_raw_mean` (dry, uncalibrated), `<sp>_cal_mean` (calibrated, empty while uncalibrated),
`<sp>_u` (standard uncertainty of cal_mean, empty while unknown; ghgnet.processing.uncertainty), then
h2o (%, minute mean), n_total (samples in the minute), flag (ICOS U/N), reasons (`;`-separated
codes), calibration_id.
Raw level columns: time_utc, station, device, stream, flushing, status, status_ok, status_flags,
then one column per quantity (co2 ppm, co2_dry ppm, ch4 ppb, ..., h2o %, cavity_pressure Torr, ...).
Calibration level: one row per calibration and per target result, time ordered: time_utc (start
of the run), kind (calibration | target), id, device, cylinders (`;`-separated: the standards, or
the target cylinder), then per species `<sp>_c0`, `<sp>_c1`, `<sp>_c2` (fit coefficients, lowest
order first: assigned = c0 + c1*measured [+ c2*measured^2]), `<sp>_r2`, `<sp>_rmse` (calibration),
and `<sp>_measured` (calibrated value of the target), `<sp>_assigned`, `<sp>_bias`
(= calibrated - assigned), `<sp>_within_goal`, `<sp>_u` (standard uncertainty of the bias),
`<sp>_within_u` (|bias| <= 2u) (target).
Missing values are empty cells.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import TextIO

import numpy as np

from drivers.rawtable import RawTable
from drivers.reading import SPECIES, unit_of
from station_agent.storage.highrate_block import HighRateBlock

SPECIES_FIELDS = ("mean", "std", "n", "raw_mean", "cal_mean", "u")


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


CAL_FIELDS = ("c0", "c1", "c2", "r2", "rmse", "measured", "assigned", "bias", "within_goal", "u", "within_u")


def write_calibration_csv(calibrations: list[dict], targets: list[dict], out: TextIO) -> int:
    rows = []
    for c in calibrations:
        row = {"time_utc": c["time_start"], "kind": "calibration", "id": c["id"], "device": c["device"],
               "cylinders": ";".join(s["cylinder"] for s in c["standards"])}
        for sp, f in c["fits"].items():
            for i, v in enumerate(f["coefficients"][:3]):
                row[f"{sp}_c{i}"] = v
            row[f"{sp}_r2"], row[f"{sp}_rmse"] = f["r2"], f["rmse"]
        rows.append(row)
    for t in targets:
        row = {"time_utc": t["time"], "kind": "target", "id": t["id"], "device": t["device"], "cylinders": t["cylinder"]}
        for sp in t["bias"]:
            row[f"{sp}_measured"] = t["measured"].get(sp)
            row[f"{sp}_assigned"] = t["assigned"].get(sp)
            row[f"{sp}_bias"] = t["bias"].get(sp)
            row[f"{sp}_within_goal"] = t["within_goal"].get(sp)
            row[f"{sp}_u"] = t.get("u", {}).get(sp)
            row[f"{sp}_within_u"] = t.get("within_u", {}).get(sp)
        rows.append(row)
    rows.sort(key=lambda r: r["time_utc"])
    present = {k.split("_", 1)[0] for r in rows for k in r if "_" in k and k.split("_", 1)[1] in CAL_FIELDS}
    species = [sp for sp in SPECIES if sp in present]
    cols = ["time_utc", "kind", "id", "device", "cylinders"] + [f"{sp}_{f}" for sp in species for f in CAL_FIELDS]
    w = csv.writer(out, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return len(rows)


def highrate_table(blocks: Iterable[HighRateBlock]) -> RawTable:
    """One device's high-rate blocks, in time order, as one table (for drivers.campbell.toa5's
    writer): every column any block has, NaN where a block lacks it, units from drivers.reading."""
    blocks = list(blocks)
    devices = {b.device for b in blocks}
    if len(devices) > 1:
        raise ValueError(f"high-rate export: one device at a time, got {', '.join(sorted(devices))}")
    names: dict[str, None] = {}
    for b in blocks:
        names.update(dict.fromkeys(b.columns))
    times = [np.datetime64(b.start.replace(tzinfo=None), "ms") + b.time_ms.astype("timedelta64[ms]") for b in blocks]
    cols = {k: np.concatenate([b.columns.get(k, np.full(b.n, np.nan)) for b in blocks]) if blocks else np.empty(0)
            for k in names}
    time = np.concatenate(times).astype("datetime64[ns]") if times else np.empty(0, dtype="datetime64[ns]")
    return RawTable(list(names), [unit_of(k) for k in names], cols, time)
