"""Substitute data for the operating hours a monitor has no valid hourly value for, each
substituted value marked with how it was obtained (a method-of-determination code, MODC).

Works on one monitor's hourly series (CO2 dry % vol, or standard dry flow m3/h), over its
operating hours only: a gap is a run of consecutive operating hours without a valid value, its
length N counted in operating hours; the hours the unit did not run are neither data nor gaps.

## HJ 75-2017 (the default)
Rules as HJ 75-2017 tabulates them for data missing during maintenance or other faults, and for
out-of-control periods (a failed daily check until a passing one), by the quarter's valid-data
capture rate alpha ("季度有效数据捕集率"; here: valid / operating hours of the calendar quarter
before the gap, 100 % when the quarter has no earlier operating hour):

| kind           | alpha          | N        | substitute                                                  | code |
|----------------|----------------|----------|-------------------------------------------------------------|------|
| missing        | >= 90 %        | <= 24 h  | mean of the valid hours just before and just after the gap  | H1   |
| missing        | >= 90 %        | > 24 h   | maximum of the 720 valid hours before the gap               | H2   |
| missing        | 75 % - 90 %    | any      | maximum of the 2160 valid hours before the gap              | H3   |
| out of control | >= 90 %        | <= 24 h  | maximum of the 180 valid hours before the last calibration  | H4   |
| out of control | >= 90 %        | > 24 h   | maximum of the 720 valid hours before the last calibration  | H5   |
| out of control | 75 % - 90 %    | any      | maximum of the 2160 valid hours before the last calibration | H6   |
| either         | < 75 %         | any      | maximum of the 2160 valid hours before (our choice: the     | H9   |
|                |                |          | standard gives no rule here; the most conservative value)   |      |

"The last calibration" is the last passing check before the failure (`drift.OutOfControlPeriod`).
HJ 75-2017 states the out-of-control rule for the pollutant's hourly emission; here it is applied
to the monitor that was out of control (the CO2 analyzer's concentration), the flow staying
measured. UNVERIFIED, every number of this table (75 %, 90 %, 24 h, 180/720/2160 hours, and the
before-and-after mean of H1): the text of HJ 75-2017 (its data review and processing chapter and
tables) was not in the reference corpus, nor the MEE power-sector CO2 CEMS guideline. Sources:
DOMAIN.md's and issue 18's briefs, and one independent DAHS implementation of HJ 75 seen in the
corpus, which agrees on the out-of-control branch (180/720/2160 hours before the last calibration,
>= 90 % / 75-90 %) but, for data missing during maintenance, takes the maximum of the 180 (N <= 24 h)
or 720 (N > 24 h) valid hours before the gap instead of the before-and-after mean (H1). The H1 rule
here follows the briefs; check it against HJ 75-2017 before relying on it.

## US 40 CFR Part 75 (option)
CO2 concentration: section 75.35(d) applies the standard procedure of section 75.33(b) (Table 1,
written for SO2) with "CO2" read for "SO2" (75.35 read in the eCFR text); before 720 quality-assured
(QA) monitor operating hours exist, the initial procedure of section 75.31(b) (mean of the hour
before and after). The percent monitor data availability (PMA) is QA hours / operating hours over
the previous 8,760 operating hours (section 75.32, equations 8 and 9):

| PMA            | N        | substitute                                                   | MODC     |
|----------------|----------|--------------------------------------------------------------|----------|
| (initial)      | any      | mean of the hour before and the hour after (75.31(b))        | 07       |
| >= 95 %        | <= 24 h  | mean of the hour before and the hour after (HB/HA)           | 06       |
| >= 95 %        | > 24 h   | the greater of the 90th percentile of the lookback and HB/HA | 08 or 06 |
| 90 % - 95 %    | <= 8 h   | HB/HA                                                        | 06       |
| 90 % - 95 %    | > 8 h    | the greater of the 95th percentile of the lookback and HB/HA | 09 or 06 |
| 80 % - 90 %    | any      | the maximum of the lookback                                  | 10       |
| < 80 %         | any      | the maximum potential value (from the monitoring plan)       | 12       |

Lookback: the previous 720 QA operating hours for CO2 (section 75.33(b)). The PMA bands, the 24 h
and 8 h splits, the 90th/95th percentiles, the lookback maximum and the maximum potential value
were read in section 75.33(b)(1)-(4) (govregs.com copy); the 720 and 2,160 QA hours in section
75.33(a) (GPO 2003 copy). Codes 01 and 06-12 as section 75.57 Table 4a words them (read in the
eCFR text, MichalOpoka/ecfr section-75.57.md).

Flow (`part75_flow_substitute`) is load-based, as section 75.33(c), Table 2 and appendix C section
2 make it: every operating hour carries its operating load range (`load_ranges`), and the substitute
is taken from the QA hours of the missing hour's own load range:

| PMA            | N        | substitute (QA hours in the hour's load range)               | MODC     |
|----------------|----------|--------------------------------------------------------------|----------|
| (initial)      | any      | mean of all earlier QA hours in the range (or a higher one)  | 07       |
| >= 95 %        | <= 24 h  | mean of the range's hours in the 2,160-hour lookback         | 11       |
| >= 95 %        | > 24 h   | the greater of the range's 90th percentile and HB/HA         | 08 or 06 |
| 90 % - 95 %    | <= 8 h   | mean of the range's hours in the lookback                    | 11       |
| 90 % - 95 %    | > 8 h    | the greater of the range's 95th percentile and HB/HA         | 09 or 06 |
| 80 % - 90 %    | any      | the range's maximum in the lookback                          | 10       |
| < 80 %         | any      | the maximum potential flow                                   | 12       |

What of this was read in the texts: the 2,160-hour initial period and lookback for flow (75.31(a),
75.33(a)); code 07's "arithmetic average of all ... flow rate values at the corresponding load range
(or a higher load range)" and code 11's "average of hourly flow rates ... in corresponding load
range, for the applicable lookback period" (75.57 Table 4a); "operating load range corresponding to
hourly gross load of 1 to 10, except for units using a common stack ..., which may use up to 20 load
ranges" (75.57(b)(4)). Not read (the texts of 75.33(c) and appendix C were not in the reference
corpus): that 75.33(c) has the same PMA bands, N splits and percentiles as 75.33(b), and that its
long-gap rule is "the greater of" the range's percentile and HB/HA (inferred from Table 4a listing
flow rates under code 06, which only such a rule can produce); that the ten ranges are equal tenths
of the maximum hourly gross load (appendix C section 2.1 as remembered, see `load_ranges`; they are
not fractions of the range from the minimum safe to the maximum sustainable load, which is appendix
A's "range of operation" for the RATA load levels). Our choices: a range with no QA hour in the
lookback takes the next higher range that has one (the initial procedure's rule, code 07, applied
throughout); an hour whose load is unknown (range 0) is filled from the highest range with data (flow
rises with load: the conservative side); without load data every hour is in one range.

Percentiles are numpy's linear interpolation (ECMPS's exact rank rule was not verified), and which
code ECMPS expects when the HB/HA average is the greater of the two (06 here) was not verified either.
When no value can be formed, the maximum potential value (12) is used.

Both methods: a gap still open at the end of the data (the monitor not back yet) takes the hour
before alone where the rule wants before and after; recomputing once it is back gives the final
value, as a DAHS does when it closes a missing data period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from station_agent.processing.cems.drift import OutOfControlPeriod

MEASURED = "01"
NOT_OPERATING = ""
NOTHING_TO_SUBSTITUTE = "NA"

MODC: dict[str, str] = {
    "01": "measured: a valid hour of the certified primary monitor",
    "06": "Part 75: mean of the hour before and the hour after the missing data period",
    "07": "Part 75: initial missing data procedure (section 75.31): CO2 the mean of the hour before and after, "
          "flow the mean of all earlier hours in the hour's load range (or a higher one)",
    "08": "Part 75: 90th percentile of the lookback period (flow: in the hour's load range)",
    "09": "Part 75: 95th percentile of the lookback period (flow: in the hour's load range)",
    "10": "Part 75: maximum of the lookback period (flow: in the hour's load range)",
    "11": "Part 75: average of the hourly flow rates in the hour's load range, in the lookback period",
    "12": "Part 75: maximum potential value",
    "H1": "HJ 75-2017 missing data, capture >= 90 %, N <= 24 h: mean of the valid hours before and after",
    "H2": "HJ 75-2017 missing data, capture >= 90 %, N > 24 h: maximum of the 720 valid hours before",
    "H3": "HJ 75-2017 missing data, capture 75-90 %: maximum of the 2160 valid hours before",
    "H4": "HJ 75-2017 out of control, capture >= 90 %, N <= 24 h: maximum of the 180 valid hours before the last "
          "calibration",
    "H5": "HJ 75-2017 out of control, capture >= 90 %, N > 24 h: maximum of the 720 valid hours before the last "
          "calibration",
    "H6": "HJ 75-2017 out of control, capture 75-90 %: maximum of the 2160 valid hours before the last calibration",
    "H9": "capture < 75 % (no HJ 75-2017 rule): maximum of the 2160 valid hours before",
    "NA": "no valid hour to substitute from: the hour stays without a value",
}
"""Method-of-determination codes: two characters like ECMPS's; H* are this project's for HJ 75."""


@dataclass(frozen=True)
class Substituted:
    """One monitor's hourly series after substitution: `values` (NaN for hours not operating or
    with nothing to substitute from), `modc` per hour ("" not operating, "01" measured)."""

    values: NDArray[np.float64]
    modc: NDArray[np.str_]

    @property
    def substituted(self) -> NDArray[np.bool_]:
        return (self.modc != MEASURED) & (self.modc != NOT_OPERATING)


def _gaps(ok: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) index runs of False."""
    padded = np.concatenate(([True], ok, [True]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _hb_ha(values: NDArray[np.float64], ok: NDArray[np.bool_], start: int, end: int) -> float:
    """Mean of the valid value just before `start` and just after `end` (one side if only one)."""
    before = values[:start][ok[:start]]
    after = values[end:][ok[end:]]
    sides = ([before[-1]] if len(before) else []) + ([after[0]] if len(after) else [])
    return float(np.mean(sides)) if sides else float("nan")


def _last_valid(values: NDArray[np.float64], ok: NDArray[np.bool_], end: int, count: int,
                same: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
    mask = ok[:end] if same is None else ok[:end] & same[:end]
    return values[:end][mask][-count:]


def _max(values: NDArray[np.float64]) -> float:
    return float(values.max()) if len(values) else float("nan")


def _by_availability(pma: float, n_hours: int, lookback: NDArray[np.float64], hb_ha: float,
                     short_gap: tuple[float, str], parameter: Part75Parameter) -> tuple[float, str]:
    """Section 75.33(b)'s ladder after the initial period, by percent monitor data availability and
    gap length: `short_gap` (value, code) for a short gap at 90 % or more, then the lookback's 90th
    (95 % or more) or 95th percentile unless the hour-before/after mean is higher (06), the lookback's
    maximum (80-90 %), the maximum potential value (below 80 %)."""
    if pma >= 95.0 and n_hours <= 24 or 90.0 <= pma < 95.0 and n_hours <= 8:
        return short_gap
    if pma >= 90.0:
        pct = np.percentile(lookback, 90 if pma >= 95.0 else 95) if len(lookback) else np.nan
        return (pct, "08" if pma >= 95.0 else "09") if not hb_ha > pct else (hb_ha, "06")
    if pma >= 80.0:
        return _max(lookback), "10"
    return parameter.max_potential, "12"


def _expand(operating: NDArray[np.bool_], values: NDArray[np.float64], modc: NDArray[np.str_]) -> Substituted:
    out_v = np.full(len(operating), np.nan)
    out_c = np.full(len(operating), NOT_OPERATING, dtype="<U2")
    out_v[operating] = values
    out_c[operating] = modc
    return Substituted(out_v, out_c)


def _quarter(hours: NDArray[np.datetime64]) -> NDArray[np.int64]:
    months = hours.astype("datetime64[M]").astype(np.int64)
    return months // 3


def hj75_substitute(hours: NDArray[np.datetime64], values: NDArray[np.float64], valid: NDArray[np.bool_],
                    operating: NDArray[np.bool_], out_of_control: NDArray[np.bool_] | None = None,
                    periods: Sequence[OutOfControlPeriod] = ()) -> Substituted:
    """HJ 75-2017 substitution of one monitor's hourly series (table in the module docstring)."""
    operating = np.asarray(operating, bool)
    hrs = np.asarray(hours).astype("datetime64[h]")[operating]
    v = np.asarray(values, float)[operating]
    ok = np.asarray(valid, bool)[operating] & np.isfinite(v)
    ooc = (np.zeros(len(v), bool) if out_of_control is None else np.asarray(out_of_control, bool)[operating]) & ~ok
    out = np.where(ok, v, np.nan)
    codes = np.where(ok, MEASURED, NOTHING_TO_SUBSTITUTE).astype("<U2")
    quarter = _quarter(hrs)
    for g_start, g_end in _gaps(ok):
        # split a gap where the kind (missing / out of control) changes; N counts the whole run
        n_hours = g_end - g_start
        same_quarter = quarter[:g_start] == (quarter[g_start] if len(quarter) else 0)
        alpha = float(ok[:g_start][same_quarter].mean()) * 100.0 if same_quarter.any() else 100.0
        hb_ha = _hb_ha(v, ok, g_start, g_end)
        for i in range(g_start, g_end):
            if ooc[i]:
                end = _before_calibration(hrs, i, periods)
                if alpha >= 90.0 and n_hours <= 24:
                    value, code = _max(_last_valid(v, ok, end, 180)), "H4"
                elif alpha >= 90.0:
                    value, code = _max(_last_valid(v, ok, end, 720)), "H5"
                elif alpha >= 75.0:
                    value, code = _max(_last_valid(v, ok, end, 2160)), "H6"
                else:
                    value, code = _max(_last_valid(v, ok, end, 2160)), "H9"
            elif alpha >= 90.0 and n_hours <= 24:
                value, code = hb_ha, "H1"
            elif alpha >= 90.0:
                value, code = _max(_last_valid(v, ok, g_start, 720)), "H2"
            elif alpha >= 75.0:
                value, code = _max(_last_valid(v, ok, g_start, 2160)), "H3"
            else:
                value, code = _max(_last_valid(v, ok, g_start, 2160)), "H9"
            if np.isfinite(value):
                out[i], codes[i] = value, code
    return _expand(operating, out, codes)


def _before_calibration(hrs: NDArray[np.datetime64], i: int, periods: Sequence[OutOfControlPeriod]) -> int:
    """Index of the first operating hour at or after the last passing check before the failure
    that covers hour i (the gap's own hour when no period or no earlier passing check is known)."""
    hour = hrs[i]
    for p in periods:
        start = np.datetime64(p.start, "h")
        end = None if p.end is None else np.datetime64(p.end, "s")
        if start <= hour and (end is None or hour.astype("datetime64[s]") < end):
            if p.last_passed is None:
                return i
            return int(np.searchsorted(hrs, np.datetime64(p.last_passed, "h"), side="left"))
    return i


@dataclass(frozen=True, slots=True)
class Part75Parameter:
    """Part 75 settings of one monitored parameter: lookback and initial-procedure length in QA
    hours, and the maximum potential value (CO2 % or flow m3/h) from the monitoring plan."""

    lookback_hours: int
    initial_qa_hours: int
    max_potential: float


def part75_co2(max_potential_pct: float) -> Part75Parameter:
    """CO2 concentration: 720-hour lookback and initial period (sections 75.31, 75.33(b), 75.35)."""
    return Part75Parameter(720, 720, max_potential_pct)


def part75_flow(max_potential_m3_h: float) -> Part75Parameter:
    """Flow: 2,160-hour lookback and initial period (sections 75.31(a), 75.33(a))."""
    return Part75Parameter(2160, 2160, max_potential_m3_h)


def part75_substitute(values: NDArray[np.float64], valid: NDArray[np.bool_], operating: NDArray[np.bool_],
                      parameter: Part75Parameter) -> Substituted:
    """Part 75 substitution of a concentration (CO2), section 75.33(b) via 75.35 (first table above)."""
    operating = np.asarray(operating, bool)
    v = np.asarray(values, float)[operating]
    ok = np.asarray(valid, bool)[operating] & np.isfinite(v)
    out = np.where(ok, v, np.nan)
    codes = np.where(ok, MEASURED, NOTHING_TO_SUBSTITUTE).astype("<U2")
    for g_start, g_end in _gaps(ok):
        n_hours = g_end - g_start
        qa_before = int(ok[:g_start].sum())
        window = ok[max(0, g_start - 8760):g_start]
        pma = float(window.mean()) * 100.0 if len(window) else 100.0
        hb_ha = _hb_ha(v, ok, g_start, g_end)
        lookback = _last_valid(v, ok, g_start, parameter.lookback_hours)
        for i in range(g_start, g_end):
            if qa_before < parameter.initial_qa_hours:
                value, code = hb_ha, "07"
            else:
                value, code = _by_availability(pma, n_hours, lookback, hb_ha, (hb_ha, "06"), parameter)
            if not np.isfinite(value):
                value, code = parameter.max_potential, "12"
            out[i], codes[i] = float(value), code
    return _expand(operating, out, codes)


def load_ranges(load: ArrayLike, maximum_load: float, n_ranges: int = 10) -> NDArray[np.int64]:
    """Operating load range (1..n) of each hour's gross load, as Part 75 records it per hour
    (section 75.57(b)(4): "1 to 10", up to 20 for a common stack; verified). Range k holds loads above
    (k-1)/n and up to k/n of the maximum hourly gross load, range 1 from zero (appendix C section 2.1,
    ten equal ranges of the maximum hourly gross load, not verified: the appendix's text was not in
    the reference corpus). A load above the maximum is in range n; an unknown load (NaN) is range 0.

    E.g. maximum 600 MW: 0 and 60 MW -> 1, 60.1 -> 2, 300 -> 5, 301 -> 6, 600 and 650 -> 10."""
    if not (np.isfinite(maximum_load) and maximum_load > 0):
        raise ValueError(f"maximum_load must be a positive number, got {maximum_load}")
    if not 1 <= n_ranges <= 20:
        raise ValueError(f"n_ranges must be 1..20 (Part 75: 10, up to 20 for a common stack), got {n_ranges}")
    x = np.asarray(load, float) / maximum_load * n_ranges
    with np.errstate(invalid="ignore"):
        r = np.clip(np.ceil(x - 1e-9), 1, n_ranges)
    return np.where(np.isfinite(x), r, 0).astype(np.int64)


def _in_load_range(values: NDArray[np.float64], ranges: NDArray[np.int64], r: int) -> NDArray[np.float64]:
    """The values of load range r, or of the next higher range that has any (unknown r = 0: the
    highest range that has any)."""
    present = np.unique(ranges[ranges > 0])
    if len(present) == 0:
        return values[:0]
    if r <= 0:
        r = int(present[-1])
    higher = present[present >= r]
    return values[ranges == higher[0]] if len(higher) else values[:0]


def part75_flow_substitute(values: NDArray[np.float64], valid: NDArray[np.bool_], operating: NDArray[np.bool_],
                           parameter: Part75Parameter,
                           load_range: NDArray[np.int64] | None = None) -> Substituted:
    """Part 75 load-based substitution of the flow (second table in the module docstring).

    `load_range` gives each hour's operating load range (`load_ranges`; None: all hours in one)."""
    operating = np.asarray(operating, bool)
    v = np.asarray(values, float)[operating]
    ok = np.asarray(valid, bool)[operating] & np.isfinite(v)
    lr = (np.ones(len(v), np.int64) if load_range is None
          else np.asarray(load_range, np.int64)[operating])
    out = np.where(ok, v, np.nan)
    codes = np.where(ok, MEASURED, NOTHING_TO_SUBSTITUTE).astype("<U2")
    qa_index = np.flatnonzero(ok)
    for g_start, g_end in _gaps(ok):
        n_hours = g_end - g_start
        prior = qa_index[qa_index < g_start]
        window = ok[max(0, g_start - 8760):g_start]
        pma = float(window.mean()) * 100.0 if len(window) else 100.0
        hb_ha = _hb_ha(v, ok, g_start, g_end)
        initial = len(prior) < parameter.initial_qa_hours
        pool = prior if initial else prior[-parameter.lookback_hours:]
        pool_v, pool_r = v[pool], lr[pool]
        for i in range(g_start, g_end):
            same = _in_load_range(pool_v, pool_r, int(lr[i]))
            mean = float(same.mean()) if len(same) else np.nan
            if initial:
                value, code = mean, "07"
            else:
                value, code = _by_availability(pma, n_hours, same, hb_ha, (mean, "11"), parameter)
            if not np.isfinite(value):
                value, code = parameter.max_potential, "12"
            out[i], codes[i] = float(value), code
    return _expand(operating, out, codes)
