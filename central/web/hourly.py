"""/api/hourly's answer read straight from the hourly table: the same JSON as
central.views.hourly_series, without a HourlyRow per row and with each hour's text made once (a
year of a station is 50,000 rows; tests/central/web/test_hourly_answer.py keeps the two equal)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ghgnet.timeutil import iso_utc

COLUMNS = ("mean", "std", "repeatability", "mean_all", "std_all")
COUNTS = ("n", "n_all", "n_spikes")


def hourly_series(store, station: str, start: datetime, end: datetime, stream: str | None = None,
                  species: str | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT stream, species, hour, mean, std, repeatability, mean_all, std_all, n, n_all, n_spikes, flag "
           "FROM hourly WHERE station = ? AND hour >= ? AND hour < ?")
    params: list[Any] = [station, store._t(start), store._t(end)]
    for name, value in (("stream", stream), ("species", species)):
        if value is not None:
            sql += f" AND {name} = ?"
            params.append(value)
    texts: dict[Any, str] = {}  # an hour's ISO text, by the value the backend gave
    out: list[dict[str, Any]] = []
    key = None
    g: dict[str, Any] = {}
    for r in store._query(sql + " ORDER BY stream, species, hour", params):
        if (r[0], r[1]) != key:
            key = (r[0], r[1])
            g = {"stream": r[0], "species": r[1], "time": [], **{k: [] for k in COLUMNS}, **{k: [] for k in COUNTS},
                 "flag": []}
            out.append(g)
        t = texts.get(r[2])
        if t is None:
            t = texts[r[2]] = iso_utc(store._from_t(r[2]))
        g["time"].append(t)
        for k, v in zip(COLUMNS, r[3:8]):
            g[k].append(None if v is None or not math.isfinite(v) else float(v))
        for k, v in zip(COUNTS, r[8:11]):
            g[k].append(v)
        g["flag"].append(r[11])
    return out
