"""A simulated power-plant stack: the unit's load over the day, start-ups and shut-downs, flue gas
physics consistent with the load, a CO2 analyzer that drifts between daily checks, and faults.

Pure and seeded: every value is a function of (spec, seed, minute), drawn per UTC day from
`numpy.random.default_rng([seed, day, stream])`, so a month is computed in one vectorised call and a
live bench can ask for any minute and get the same answer. It knows the true emission, so a test
can check that the CEMS calculation recovers it.

Physics (a coal unit; every number is a `UnitSpec` field):
- heat input (GJ/h) = load (MW) * 3.6 / efficiency(load); true CO2 (kg/h) = heat * carbon per unit
  heat (tC/GJ) * oxidised fraction * 44/12 * 1000;
- O2 (dry) rises as load falls (more excess air); CO2 (dry) = CO2max * (20.9 - O2)/20.9, the
  combustion relation for a fixed fuel (CO2max: the fuel's stoichiometric CO2, ~18.7 % for coal);
- standard dry flow = true CO2 mass / CO2 dry concentration (mg/m3 at 273.15 K, 101.325 kPa);
- actual flow, velocity, pitot differential pressure from the temperature, pressures and moisture
  (the inverse of the CEMS chain), the CEMS point velocity being the section mean / the true Kv.
This simulator does not import the calculation: its constants are its own, so a test comparing the
two checks one against the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

CO2_MG_M3_PER_PCT = 44.01 / 22.414 * 1e4
_R = 8.314462618
_M = {"co2": 44.01, "o2": 31.999, "n2": 28.014, "h2o": 18.015}

FAULT_KINDS = ("blocked_pitot", "co2_over_range", "device_lost", "analyzer_drift")
"""blocked_pitot: the pitot's differential pressure collapses to ~0 Pa; co2_over_range: the analyzer
reads its full scale; device_lost: a device's values are gone (`device`: "analyzer", "flow" or "all";
`lost` is the flag the bench will turn into a dead Modbus device); analyzer_drift: a span error
(`span_error`, relative) the daily check sees until the fault ends."""

DEVICE_VALUES = {"analyzer": ("co2_pct", "o2_pct"),
                 "flow": ("differential_pressure_pa", "temperature_c", "static_pa", "moisture_pct")}
"""The values each simulated device gives (a lost device: all its values NaN); "all": every value."""


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """A unit and its stack; defaults: a 600 MW coal unit with wet desulphurisation (saturated flue
    gas at ~50 degC), a 7.5 m stack, a wet in-situ CO2 analyzer of range 0-20 %."""

    capacity_mw: float = 600.0
    min_load_fraction: float = 0.45
    efficiency_full: float = 0.41
    efficiency_min_load: float = 0.37
    carbon_tc_per_gj: float = 0.0262
    oxidised_fraction: float = 0.99
    co2_max_dry_pct: float = 18.7
    o2_full_load_pct: float = 5.0
    o2_min_load_pct: float = 8.0
    o2_startup_pct: float = 14.0
    moisture_pct: float = 11.5
    temperature_c: float = 50.0
    static_full_load_pa: float = 400.0
    barometric_pa: float = 101000.0
    stack_diameter_m: float = 7.5
    kv_true: float = 1.06
    kp: float = 0.84
    co2_full_scale_pct: float = 20.0
    co2_wet_analyzer: bool = True
    span_gas_pct: float = 15.0
    check_minute_of_day: int = 120
    check_minutes: int = 10
    startup_minutes: int = 180
    shutdown_minutes: int = 90
    daily_zero_drift_sd_pct: float = 0.03
    daily_span_drift_sd: float = 0.003
    co2_noise_pct: float = 0.03

    @property
    def area_m2(self) -> float:
        return float(np.pi * self.stack_diameter_m**2 / 4.0)


@dataclass(frozen=True, slots=True)
class StackFault:
    """`kind` (FAULT_KINDS) in force from `start` to `end` (datetime64, end excluded)."""

    kind: str
    start: np.datetime64
    end: np.datetime64
    params: dict[str, float | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown stack fault {self.kind!r}; known: {', '.join(FAULT_KINDS)}")


@dataclass(frozen=True, slots=True)
class SimulatedCheck:
    """A daily zero/span check as the analyzer saw it (% CO2)."""

    time: np.datetime64
    zero_reading: float
    span_reading: float
    span_reference: float
    full_scale: float


@dataclass(frozen=True)
class StackMinutes:
    """Minute values named as the CEMS calculation's inputs, the devices' OK flags (the analyzer is
    not OK while it measures its check gases), the `lost` flag, the daily checks and the truth."""

    time: NDArray[np.datetime64]
    running: NDArray[np.bool_]
    load_mw: NDArray[np.float64]
    values: dict[str, NDArray[np.float64]]
    ok: dict[str, NDArray[np.bool_]]
    lost: NDArray[np.bool_]
    checks: list[SimulatedCheck]
    true_co2_kg_h: NDArray[np.float64]
    true_standard_flow_m3_h: NDArray[np.float64]
    true_co2_dry_pct: NDArray[np.float64]

    def true_mass_t(self) -> float:
        """True CO2 emitted over these minutes (t)."""
        return float(self.true_co2_kg_h.sum() / 60.0 / 1000.0)


def load_fraction_of_day(minute_of_day: NDArray[np.float64]) -> NDArray[np.float64]:
    """Dispatch shape over a UTC day (no outage): a night trough, a morning rise, an evening peak."""
    h = minute_of_day / 60.0
    return (0.78 + 0.12 * np.sin(2 * np.pi * (h - 9.0) / 24.0)
            + 0.08 * np.exp(-0.5 * ((h - 19.0) / 1.5) ** 2) - 0.05 * np.exp(-0.5 * ((h - 3.5) / 2.0) ** 2))


def _day_draws(seed: int, days: NDArray[np.int64], stream: int, shape: tuple[int, ...]) -> dict[int, NDArray]:
    return {int(d): np.random.default_rng([seed, int(d) + 2**20, stream]).standard_normal(shape) for d in days}


def _operating_fraction(t_min: NDArray[np.int64], outages: Sequence[tuple[np.datetime64, np.datetime64]],
                        spec: UnitSpec) -> NDArray[np.float64]:
    """1 in normal operation, 0 in an outage, ramps at shut-down (to 0) and start-up (from 0)."""
    scale = np.ones(len(t_min))
    for start, end in outages:
        s = np.datetime64(start, "m").astype(np.int64)
        e = np.datetime64(end, "m").astype(np.int64)
        down = np.clip((s - t_min) / spec.shutdown_minutes, 0.0, 1.0)
        up = np.clip((t_min - e + 1) / spec.startup_minutes, 0.0, 1.0)
        scale = np.minimum(scale, np.where(t_min < s, down, np.where(t_min >= e, up, 0.0)))
    return scale


def simulate_stack(spec: UnitSpec, times: NDArray[np.datetime64], seed: int = 0,
                   outages: Sequence[tuple[np.datetime64, np.datetime64]] = (),
                   faults: Sequence[StackFault] = ()) -> StackMinutes:
    """The stack at each minute start in `times` (UTC datetime64)."""
    t = np.asarray(times).astype("datetime64[m]")
    t_min = t.astype(np.int64)
    n = len(t)
    day = t_min // 1440
    mod = (t_min % 1440).astype(float)
    days = np.unique(day)
    noise = {k: _day_draws(seed, days, i, (1440,)) for i, k in enumerate(
        ("load", "dp", "temp", "static", "baro", "moist", "o2", "co2"))}
    drifts = _day_draws(seed, days, 99, (2,))

    def draw(name: str) -> NDArray[np.float64]:
        return np.array([noise[name][int(d)][int(m)] for d, m in zip(day, mod, strict=True)]) if n else np.zeros(0)

    # load: the daily shape with minute-to-minute jitter (1 % of capacity), scaled by start-up/shut-down ramps
    base = np.clip(load_fraction_of_day(mod) + 0.01 * draw("load"), spec.min_load_fraction, 1.0)
    ramp = _operating_fraction(t_min, outages, spec)
    lf = base * ramp
    running = lf > 0.0
    load_mw = lf * spec.capacity_mw
    span = max(1.0 - spec.min_load_fraction, 1e-9)
    rel = np.clip((lf - spec.min_load_fraction) / span, 0.0, 1.0)
    eff = spec.efficiency_min_load + (spec.efficiency_full - spec.efficiency_min_load) * rel
    below_min = lf < spec.min_load_fraction    # start-up and shut-down: poorer efficiency, more excess air
    eff = np.where(below_min, spec.efficiency_min_load * (0.6 + 0.4 * lf / spec.min_load_fraction), eff)
    heat_gj_h = np.where(running, load_mw * 3.6 / eff, 0.0)
    true_kg_h = heat_gj_h * spec.carbon_tc_per_gj * spec.oxidised_fraction * 44.0 / 12.0 * 1000.0

    o2 = spec.o2_min_load_pct + (spec.o2_full_load_pct - spec.o2_min_load_pct) * rel
    startup_o2 = spec.o2_startup_pct + (spec.o2_min_load_pct - spec.o2_startup_pct) * lf / spec.min_load_fraction
    o2 = np.where(below_min, startup_o2, o2)
    co2_dry = spec.co2_max_dry_pct * (20.9 - o2) / 20.9
    with np.errstate(invalid="ignore", divide="ignore"):
        q_sn = np.where(running, true_kg_h * 1e6 / (co2_dry * CO2_MG_M3_PER_PCT), 0.0)
    moisture = np.where(running, spec.moisture_pct, 2.0) + 0.05 * draw("moist")
    temperature = np.where(running, spec.temperature_c, 25.0) + 0.2 * draw("temp")
    full_t_h = spec.capacity_mw * 3.6 / spec.efficiency_full * spec.carbon_tc_per_gj * spec.oxidised_fraction * 44 / 12
    q_full = full_t_h * 1e9 / (spec.co2_max_dry_pct * (20.9 - spec.o2_full_load_pct) / 20.9 * CO2_MG_M3_PER_PCT)
    static = spec.static_full_load_pa * (q_sn / q_full) ** 2 + 5.0 * draw("static")
    baro = spec.barometric_pa + 300.0 * np.sin(2 * np.pi * t_min / (1440 * 5.3)) + 10.0 * draw("baro")
    xsw = moisture / 100.0
    q_actual = q_sn / (273.15 / (273.15 + temperature) * (baro + static) / 101325.0 * (1.0 - xsw))
    v_section = q_actual / 3600.0 / spec.area_m2
    v_point = v_section / spec.kv_true
    molar = (_M["co2"] * co2_dry / 100 + _M["o2"] * o2 / 100 + _M["n2"] * (1 - co2_dry / 100 - o2 / 100)) * (1 - xsw) \
        + _M["h2o"] * xsw
    density = molar / 1000.0 * (baro + static) / (_R * (temperature + 273.15))
    dp = density * (v_point / spec.kp) ** 2 / 2.0 * (1.0 + 0.01 * draw("dp"))

    # the CO2 analyzer: drift grows through the day and is reset by the daily check's calibration
    since_check = ((mod - spec.check_minute_of_day) % 1440) / 1440.0
    day_for_drift = np.where(mod >= spec.check_minute_of_day, day, day - 1)
    zero_rate = np.array([_drift(drifts, seed, d)[0] for d in day_for_drift]) * spec.daily_zero_drift_sd_pct
    span_rate = np.array([_drift(drifts, seed, d)[1] for d in day_for_drift]) * spec.daily_span_drift_sd
    zero_err = zero_rate * since_check
    span_err = span_rate * since_check
    extra_span = np.zeros(n)
    for f in faults:
        if f.kind == "analyzer_drift":
            extra_span = np.where(_inside(t, f), float(f.params.get("span_error", 0.1)), extra_span)
    true_reading = co2_dry * (1.0 - xsw) if spec.co2_wet_analyzer else co2_dry
    co2 = true_reading * (1.0 + span_err + extra_span) + zero_err + spec.co2_noise_pct * draw("co2")
    co2 = np.clip(co2, 0.0, spec.co2_full_scale_pct)

    values = {"differential_pressure_pa": dp, "temperature_c": temperature, "static_pa": static,
              "barometric_pa": baro, "moisture_pct": moisture, "o2_pct": o2 + 0.05 * draw("o2"), "co2_pct": co2}
    in_check = (mod >= spec.check_minute_of_day) & (mod < spec.check_minute_of_day + spec.check_minutes)
    ok = {name: np.ones(n, bool) for name in values}
    ok["co2_pct"] = ~in_check
    ok["o2_pct"] = ~in_check
    lost = np.zeros(n, bool)
    for f in faults:
        inside = _inside(t, f)
        if f.kind == "blocked_pitot":
            dp_now = values["differential_pressure_pa"]
            values["differential_pressure_pa"] = np.where(inside, 0.2 * np.abs(draw("dp")), dp_now)
        elif f.kind == "co2_over_range":
            values["co2_pct"] = np.where(inside, spec.co2_full_scale_pct, values["co2_pct"])
        elif f.kind == "device_lost":
            device = str(f.params.get("device", "all"))
            names = DEVICE_VALUES.get(device, tuple(values))
            for name in names:
                values[name] = np.where(inside, np.nan, values[name])
            lost |= inside

    checks = [_check(spec, seed, drifts, d, faults) for d in days
              if _check_in(times=t, d=int(d), spec=spec)]
    return StackMinutes(time=t, running=running, load_mw=load_mw, values=values, ok=ok, lost=lost,
                        checks=checks, true_co2_kg_h=true_kg_h, true_standard_flow_m3_h=q_sn,
                        true_co2_dry_pct=np.where(running, co2_dry, np.nan))


def _inside(t: NDArray[np.datetime64], f: StackFault) -> NDArray[np.bool_]:
    return (t >= np.datetime64(f.start, "m")) & (t < np.datetime64(f.end, "m"))


def _drift(drifts: dict[int, NDArray], seed: int, d: int) -> NDArray[np.float64]:
    if int(d) not in drifts:
        drifts[int(d)] = np.random.default_rng([seed, int(d) + 2**20, 99]).standard_normal(2)
    return drifts[int(d)]


def _check_in(times: NDArray[np.datetime64], d: int, spec: UnitSpec) -> bool:
    at = np.datetime64(d * 1440 + spec.check_minute_of_day, "m")
    return bool(len(times) and times[0] <= at <= times[-1])


def _check(spec: UnitSpec, seed: int, drifts: dict[int, NDArray], d: int,
           faults: Sequence[StackFault]) -> SimulatedCheck:
    """The check at day d's check minute sees the drift accumulated since the previous one."""
    at = np.datetime64(int(d) * 1440 + spec.check_minute_of_day, "m")
    zero_rate, span_rate = _drift(drifts, seed, int(d) - 1)
    zero = zero_rate * spec.daily_zero_drift_sd_pct
    span = span_rate * spec.daily_span_drift_sd
    for f in faults:
        if f.kind == "analyzer_drift" and np.datetime64(f.start, "m") <= at < np.datetime64(f.end, "m"):
            span += float(f.params.get("span_error", 0.1))
    return SimulatedCheck(time=at, zero_reading=float(zero),
                          span_reading=float(spec.span_gas_pct * (1.0 + span) + zero),
                          span_reference=spec.span_gas_pct, full_scale=spec.co2_full_scale_pct)
