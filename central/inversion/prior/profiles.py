"""Temporal profiles: each hour's share of a sector's annual emission.

A sector's profile has 12 month, 7 weekday (Monday first) and 24 hour (local time) factors. The
annual total is split into months in proportion to factor x days in the month; within a UTC month
each hour gets its month's share in proportion to weekday factor x hour factor at its local time.
So the prior's total per sector and month equals the inventory's annual total x that month's
share exactly, whatever the weekday and hour factors.

Defaults (`DEFAULT_PROFILES`, chosen by `like = NAME` or by a sector named like one of them): the
weekday and hour-of-day factors of the TNO GNFR profiles (Denier van der Gon et al., 2011, "Description
of current temporal emission patterns and sensitivity of predicted AQ for temporal emission
patterns", TNO report, EU FP7 MACC deliverable D_D-EMIS_1.3; mapped to GNFR sectors by TNO in
2018, as distributed in C2SM-RCM/emiproc files/profiles/tno/timeprofiles-{day-in-week,hour-in-day}_GNFR.csv).
Month factors default to flat: heating seasonality depends on the city's climate, so a city's team
gives its own (e.g. from degree days) with `month = [...]`.
"""

from __future__ import annotations

import numpy as np

_FLAT24 = [1.0] * 24
_FLAT7 = [1.0] * 7

DEFAULT_PROFILES: dict[str, dict[str, list[float]]] = {
    # GNFR A: public power
    "public_power": {
        "weekday": [1.06, 1.06, 1.06, 1.06, 1.06, 0.85, 0.85],
        "hour": [0.79, 0.72, 0.72, 0.71, 0.74, 0.8, 0.92, 1.08, 1.19, 1.22, 1.21, 1.21,
                 1.17, 1.15, 1.14, 1.13, 1.1, 1.07, 1.04, 1.02, 1.02, 1.01, 0.96, 0.88]},
    # GNFR B: industry
    "industry": {
        "weekday": [1.08, 1.08, 1.08, 1.08, 1.08, 0.8, 0.8],
        "hour": [0.75, 0.75, 0.78, 0.82, 0.88, 0.95, 1.02, 1.09, 1.16, 1.22, 1.28, 1.3,
                 1.22, 1.24, 1.25, 1.16, 1.08, 1.01, 0.95, 0.9, 0.85, 0.81, 0.78, 0.75]},
    # GNFR C: other stationary combustion (residential and commercial heating)
    "buildings": {
        "weekday": [1.08, 1.08, 1.08, 1.08, 1.08, 0.8, 0.8],
        "hour": [0.38, 0.36, 0.36, 0.36, 0.37, 0.5, 1.19, 1.53, 1.57, 1.56, 1.35, 1.16,
                 1.07, 1.06, 1.0, 0.98, 0.99, 1.12, 1.41, 1.52, 1.39, 1.35, 1.0, 0.42]},
    # GNFR F: road transport
    "road_transport": {
        "weekday": [1.02, 1.06, 1.08, 1.1, 1.14, 0.81, 0.79],
        "hour": [0.19, 0.09, 0.06, 0.05, 0.09, 0.22, 0.86, 1.84, 1.86, 1.41, 1.24, 1.2,
                 1.32, 1.44, 1.45, 1.59, 2.03, 2.08, 1.51, 1.06, 0.74, 0.62, 0.61, 0.44]},
    # GNFR D, G-L (fugitives, shipping, aviation, off-road, waste, agriculture): flat
    "flat": {"weekday": _FLAT7, "hour": _FLAT24},
}

SECTOR_ALIASES: dict[str, str] = {
    "energy": "public_power", "power": "public_power", "public_power": "public_power",
    "industry": "industry", "buildings": "buildings", "residential": "buildings", "commercial": "buildings",
    "heating": "buildings", "transport": "road_transport", "road": "road_transport",
    "road_transport": "road_transport", "traffic": "road_transport",
}
"""Sector names that pick a default profile without `like`; any other sector is flat."""


def sector_profile(sector: str, like: str | None = None, month: list[float] | None = None,
                   weekday: list[float] | None = None, hour: list[float] | None = None) -> dict[str, np.ndarray]:
    """The factors of a sector: the named default (or the sector's alias, else flat) with overrides."""
    name = like if like is not None else SECTOR_ALIASES.get(sector.lower(), "flat")
    if name not in DEFAULT_PROFILES:
        raise ValueError(f"sector {sector!r}: unknown profile {name!r} (known: {', '.join(DEFAULT_PROFILES)})")
    base = DEFAULT_PROFILES[name]
    out = {"month": np.ones(12) if month is None else np.asarray(month, float),
           "weekday": np.asarray(base["weekday"] if weekday is None else weekday, float),
           "hour": np.asarray(base["hour"] if hour is None else hour, float)}
    for key, values in out.items():
        if np.any(values < 0) or not np.all(np.isfinite(values)) or values.sum() <= 0:
            raise ValueError(f"sector {sector!r}: {key} factors must be finite, >= 0 and not all 0")
    return out


def month_starts(first: np.datetime64, last: np.datetime64) -> np.ndarray:
    """UTC starts of the months from the one holding `first` to the one after `last`."""
    m0 = np.datetime64(first, "M")
    m1 = np.datetime64(last, "M") + 1
    return np.arange(m0, m1 + 1).astype("datetime64[s]")


def month_shares(profile: dict[str, np.ndarray], year: int) -> np.ndarray:
    """Share of the annual total in each month of `year`: factor x days, normalised."""
    months = np.arange(np.datetime64(f"{year}-01"), np.datetime64(f"{year + 1}-01") + 1)
    days = np.diff(months.astype("datetime64[D]")).astype(float)
    w = profile["month"] * days
    return w / w.sum()


def hourly_fractions(profile: dict[str, np.ndarray], start: np.datetime64, end: np.datetime64,
                     utc_offset_hours: float) -> tuple[np.ndarray, np.ndarray]:
    """(UTC hour starts, fraction of the annual total in each hour) over the whole months that
    hold [start, end). A month's fractions sum to its share of its own year's total."""
    months = month_starts(start, end - np.timedelta64(1, "s"))
    hours = np.arange(months[0], months[-1], np.timedelta64(3600, "s"))
    local = hours + np.timedelta64(int(round(utc_offset_hours * 3600)), "s")
    local_days = local.astype("datetime64[D]")
    weekday = (local_days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    hour = ((local - local_days).astype(np.int64) // 3600).astype(int)
    w = profile["weekday"][weekday] * profile["hour"][hour]
    out = np.zeros(hours.size)
    month_of = np.searchsorted(months, hours, side="right") - 1
    for k in range(months.size - 1):
        sel = month_of == k
        year = int(str(months[k])[:4])
        share = month_shares(profile, year)[int(str(months[k])[5:7]) - 1]
        total = w[sel].sum()
        if total <= 0:
            raise ValueError(f"profile gives no emission at all in {str(months[k])[:7]}")
        out[sel] = share * w[sel] / total
    return hours, out


def step_fractions(hours: np.ndarray, fractions: np.ndarray, step_start: np.ndarray,
                   step_seconds: np.ndarray) -> np.ndarray:
    """Fraction of the annual total falling in each flux step (steps on whole hours)."""
    h = hours.astype(np.int64)
    out = np.zeros(step_start.size)
    for i, (s, n) in enumerate(zip(step_start.astype(np.int64), step_seconds)):
        sel = (h >= s) & (h < s + int(round(n)))
        out[i] = fractions[sel].sum()
    return out
