"""Instrument performance test of an analyzer from its minute records (pure: arrays in, numbers out).

The protocol follows the ICOS Atmosphere Thematic Centre's Metrology Laboratory, which tests every
analyzer before it joins the network (Yver Kwok et al. 2015, AMT 8, 3867, "Comprehensive laboratory
and field testing of cavity ring-down spectroscopy analyzers measuring H2O, CO2, CH4 and CO"; test
descriptions as the MLab publishes them, icos-atc.lsce.ipsl.fr/metrology-laboratory):
- Continuous measurement repeatability (CMR) and short-term drift: one cylinder measured
  continuously (24 h at the MLab); CMR is the standard deviation of the measurements and the
  short-term drift their peak-to-peak amplitude, each for 1-min and 1-h averages. Checked in the
  MLab's text.
- Long-term repeatability (LTR) and drift: cylinders measured in turn, in cycles, over days; the
  LTR is the standard deviation of each cylinder's injection means (the last minutes of each
  injection) and the drift the slope of those means against time. The cycle lengths (e.g. 30-min
  injections) are configurable defaults: the stored text did not give them, *(unconfirmed)*.
- Water vapour test: a cylinder's gas humidified over a range of H2O; the dry mole fractions the
  analyzer reports should not move with H2O. Reported: the slope of dry value against H2O (per %)
  and the largest deviation of a humidified minute from the same cylinder measured dry. Its
  steps are configurable *(unconfirmed against the paper's text)*.

Input minutes are one analyzer's, in time order: times (epoch s, minute starts), streams, valid
flags (ICOS U), per-species values (species units: CO2 ppm, CH4/CO/N2O ppb) and H2O (%). The
values are whatever the caller picks (the analyzer's raw dry means for an acceptance test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class MinuteSeries:
    """One analyzer's minutes as arrays (see module docstring)."""

    times: NDArray[np.float64]
    streams: NDArray[np.str_]
    valid: NDArray[np.bool_]
    values: Mapping[str, NDArray[np.float64]]
    h2o: NDArray[np.float64]

    @classmethod
    def of(cls, times: ArrayLike, streams: Sequence[str], valid: ArrayLike,
           values: Mapping[str, ArrayLike], h2o: ArrayLike | None = None) -> MinuteSeries:
        t = np.asarray(times, dtype=np.float64)
        order = np.argsort(t, kind="stable")
        h = np.full(t.size, np.nan) if h2o is None else np.asarray(h2o, dtype=np.float64)
        return cls(t[order], np.asarray(streams, dtype=str)[order], np.asarray(valid, dtype=bool)[order],
                   {sp: np.asarray(v, dtype=np.float64)[order] for sp, v in values.items()}, h[order])


@dataclass(frozen=True, slots=True)
class ContinuousResult:
    """CMR and short-term drift of one species on the continuously measured cylinder."""

    stream: str
    species: str
    start: float
    end: float
    n_minutes: int
    mean: float
    cmr_1min: float
    cmr_1h: float | None
    drift_p2p_1min: float
    drift_p2p_1h: float | None
    drift_per_day: float


@dataclass(frozen=True, slots=True)
class LongTermResult:
    """LTR and drift of one species on one cylinder of the cycles."""

    stream: str
    species: str
    injection_times: tuple[float, ...]
    injection_means: tuple[float, ...]
    mean: float
    ltr: float | None
    drift_per_day: float | None


@dataclass(frozen=True, slots=True)
class WaterResult:
    """The water vapour test of one species on the humidified cylinder."""

    stream: str
    species: str
    n_minutes: int
    h2o_min: float
    h2o_max: float
    slope_per_h2o: float | None
    dry_reference: float | None
    max_abs_deviation: float | None


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    device: str
    continuous: list[ContinuousResult] = field(default_factory=list)
    long_term: list[LongTermResult] = field(default_factory=list)
    water: list[WaterResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Phases:
    """Which stream plays which part. `continuous`: the cylinder measured without a break;
    `cycle`: the cylinders measured in turn; `water`: the humidified cylinder, and
    `water_reference` the same cylinder dry (default: none, deviation not reported)."""

    continuous: str | None = None
    cycle: tuple[str, ...] = ()
    water: str | None = None
    water_reference: str | None = None


def _slope_per_day(t: NDArray[np.float64], v: NDArray[np.float64]) -> float | None:
    if t.size < 2 or np.ptp(t) == 0:
        return None
    return float(np.polyfit(t / SECONDS_PER_DAY, v, 1)[0])


def runs(streams: NDArray[np.str_]) -> list[tuple[str, int, int]]:
    """Consecutive runs of one stream: (stream, first index, end index)."""
    out: list[tuple[str, int, int]] = []
    start = 0
    for i in range(1, streams.size + 1):
        if i == streams.size or streams[i] != streams[start]:
            if streams.size:
                out.append((str(streams[start]), start, i))
            start = i
    return out


def infer_phases(m: MinuteSeries, h2o_span: float = 0.2) -> Phases:
    """Phases from the streams alone: the humidified stream is the cylinder stream whose H2O spans
    more than `h2o_span` %, the continuous one the cylinder stream with the longest single run,
    the cycle the cylinder streams injected at least twice."""
    cyl = [r for r in runs(m.streams) if r[0].startswith(("cal:", "target:", "zero", "span"))]
    water = None
    for s in dict.fromkeys(r[0] for r in cyl):
        sel = (m.streams == s) & m.valid & np.isfinite(m.h2o)
        if sel.any() and np.ptp(m.h2o[sel]) > h2o_span:
            water = s
            break
    dry = [r for r in cyl if r[0] != water]
    continuous = max(dry, key=lambda r: r[2] - r[1])[0] if dry else None
    longest = max((r[2] - r[1] for r in dry), default=0)
    counted: dict[str, int] = {}
    for s, a, b in dry:
        if b - a < longest or s != continuous:
            counted[s] = counted.get(s, 0) + 1
    cycle = tuple(s for s, n in counted.items() if n >= 2)
    ref = None
    if water is not None:
        base = water.split(":", 1)[-1]
        ref = next((s for s in dict.fromkeys(r[0] for r in dry) if base.startswith(s.split(":", 1)[-1])), None)
    return Phases(continuous, cycle, water, ref)


def continuous_repeatability(m: MinuteSeries, stream: str, skip_minutes: int = 0) -> list[ContinuousResult]:
    """CMR and short-term drift on the longest run of `stream`, its first `skip_minutes` dropped
    (the line still settling)."""
    candidates = [r for r in runs(m.streams) if r[0] == stream]
    if not candidates:
        raise ValueError(f"no minute of the continuous stream {stream!r}")
    _, a, b = max(candidates, key=lambda r: r[2] - r[1])
    idx = np.arange(a + skip_minutes, b)
    idx = idx[m.valid[idx]]
    if idx.size < 2:
        raise ValueError(f"continuous stream {stream!r}: fewer than 2 valid minutes")
    t = m.times[idx]
    out = []
    for sp, values in m.values.items():
        v = values[idx]
        ok = np.isfinite(v)
        if ok.sum() < 2:
            continue
        tv, vv = t[ok], v[ok]
        hours = np.floor(tv / 3600.0)
        hourly = np.array([vv[hours == h].mean() for h in np.unique(hours)])
        out.append(ContinuousResult(
            stream, sp, float(tv[0]), float(tv[-1] + 60.0), int(vv.size), float(vv.mean()),
            float(np.std(vv, ddof=1)), float(np.std(hourly, ddof=1)) if hourly.size > 1 else None,
            float(np.ptp(vv)), float(np.ptp(hourly)) if hourly.size > 1 else None,
            _slope_per_day(tv, vv) or 0.0))
    return out


def injection_means(m: MinuteSeries, stream: str, last_minutes: int) -> list[tuple[float, dict[str, float]]]:
    """(start time, species -> mean of the last `last_minutes` valid minutes) per injection."""
    out = []
    for s, a, b in runs(m.streams):
        if s != stream:
            continue
        idx = np.arange(a, b)[m.valid[a:b]][-last_minutes:]
        if idx.size == 0:
            continue
        means = {sp: float(np.nanmean(v[idx])) for sp, v in m.values.items() if np.isfinite(v[idx]).any()}
        out.append((float(m.times[a]), means))
    return out


def long_term_repeatability(m: MinuteSeries, streams: Sequence[str], last_minutes: int) -> list[LongTermResult]:
    out = []
    for stream in streams:
        inj = injection_means(m, stream, last_minutes)
        for sp in m.values:
            pts = [(t, means[sp]) for t, means in inj if sp in means]
            if not pts:
                continue
            t = np.array([p[0] for p in pts])
            v = np.array([p[1] for p in pts])
            out.append(LongTermResult(stream, sp, tuple(t.tolist()), tuple(v.tolist()), float(v.mean()),
                                      float(np.std(v, ddof=1)) if v.size > 1 else None, _slope_per_day(t, v)))
    return out


def water_vapour_test(m: MinuteSeries, stream: str, reference: str | None, last_minutes: int) -> list[WaterResult]:
    sel = (m.streams == stream) & m.valid & np.isfinite(m.h2o)
    if not sel.any():
        raise ValueError(f"no valid minute of the humidified stream {stream!r}")
    h = m.h2o[sel]
    ref_means: dict[str, float] = {}
    if reference is not None:
        inj = injection_means(m, reference, last_minutes)
        for sp in m.values:
            vals = [means[sp] for _, means in inj if sp in means]
            if vals:
                ref_means[sp] = float(np.mean(vals))
    out = []
    for sp, values in m.values.items():
        v = values[sel]
        ok = np.isfinite(v)
        if not ok.any():
            continue
        slope = float(np.polyfit(h[ok], v[ok], 1)[0]) if ok.sum() > 1 and np.ptp(h[ok]) > 0 else None
        dev = float(np.max(np.abs(v[ok] - ref_means[sp]))) if sp in ref_means else None
        out.append(WaterResult(stream, sp, int(ok.sum()), float(h[ok].min()), float(h[ok].max()), slope,
                               ref_means.get(sp), dev))
    return out


def performance_test(device: str, m: MinuteSeries, phases: Phases | None = None, last_minutes: int = 10,
                     skip_minutes: int = 10) -> PerformanceReport:
    """Every part of the protocol the minutes hold (phases inferred when not given)."""
    ph = phases or infer_phases(m)
    if ph.continuous is None and not ph.cycle and ph.water is None:
        raise ValueError(f"{device}: no cylinder measurement in these minutes: nothing to test")
    return PerformanceReport(
        device,
        continuous_repeatability(m, ph.continuous, skip_minutes) if ph.continuous else [],
        long_term_repeatability(m, ph.cycle, last_minutes),
        water_vapour_test(m, ph.water, ph.water_reference, last_minutes) if ph.water else [])
