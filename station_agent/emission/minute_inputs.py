"""Raw device readings -> the CEMS calculation's minute inputs (pure: rows in, arrays out).

Each input is the mean of its source point's readings in the minute (NaN when none came: the
device was lost or not polled). The analyzer's values are not OK during its daily check (it
measures check gas). `running`: the mean of its source > 0.5 where read; a minute without a
reading keeps the last known state (a lost unit-state device does not stop the unit), and
without a configured source every minute with any reading counts as running. `load` (the unit's
gross load, when configured) goes to MinuteInputs.load, the minutes' mean like any input.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np

from ghgnet.timeutil import parse_utc
from station_agent.emission.config import CemsConfig
from station_agent.processing.cems import MinuteInputs


def minute_inputs(rows: Iterable[dict], cems: CemsConfig, start: datetime, minutes: int,
                  running_before: bool | None = None) -> MinuteInputs:
    """The minutes start .. start + `minutes` from raw rows (dicts of StationStore.raw_rows)."""
    t0 = int(start.timestamp() // 60)
    sums = {name: np.zeros(minutes) for name in cems.inputs}
    counts = {name: np.zeros(minutes) for name in cems.inputs}
    by_device: dict[str, list[tuple[str, str]]] = {}
    for name, source in cems.inputs.items():
        device, _, point = source.partition(":")
        by_device.setdefault(device, []).append((name, point))
    any_reading = np.zeros(minutes, bool)
    for row in rows:
        wanted = by_device.get(row["device"])
        if not wanted or not row.get("status_ok", True):
            continue
        i = int(parse_utc(row["time"]).timestamp() // 60) - t0
        if not 0 <= i < minutes:
            continue
        any_reading[i] = True
        for name, point in wanted:
            v = row["values"].get(point)
            if v is None or v != v:
                continue
            sums[name][i] += float(v)
            counts[name][i] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {name: np.where(counts[name] > 0, sums[name] / np.maximum(counts[name], 1), np.nan) for name in sums}
    time = np.datetime64(t0, "m") + np.arange(minutes)
    if "running" in means:
        state = means.pop("running")
        running = np.zeros(minutes, bool)
        last = bool(running_before)
        for i, v in enumerate(state):
            last = bool(v > 0.5) if v == v else last
            running[i] = last
    else:
        running = any_reading
    load = means.pop("load", None)
    mod = (np.arange(t0, t0 + minutes) % 1440)
    check = cems.daily_check
    in_check = (mod >= check.minute_of_day) & (mod < check.minute_of_day + check.duration_min)
    ok = {name: ~in_check for name in ("co2_pct", "o2_pct") if name in means}
    return MinuteInputs(time=time, running=running, values=means, ok=ok, load=load)
