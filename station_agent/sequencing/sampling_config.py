"""The sampling sequence as configuration: streams on valve ports, the ambient cycle, calibration,
target and zero/span runs with their schedules, interlocks, and the cylinders.

Durations are in (simulated) seconds. A step on a stream lasts its duration, of which the first
`flush_s` seconds are flagged `flush` and excluded from means. Stream names are
`inlet:<name>`, `cal:<cylinder>`, `target:<cylinder>`, `zero` and `span`.

Two presets fill in the runs a station leaves out:
- `icos`: every `cal:` cylinder 30 min x 4 cycles every 15 days, last 10 min of each injection
  used (Yver-Kwok et al. 2021); the first `target:` cylinder 20 min every 7 h (short-term target),
  a second one with each calibration (long-term target).
- `urban`: the first three `cal:` cylinders 5 min each, once, every 3 h (UUCON-like), last 2 min
  used; the first `target:` cylinder 5 min every 6 h.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from ghgnet import species
from ghgnet.config import StrictModel

STREAM_PATTERN = r"^(inlet:[A-Za-z0-9_.-]{1,32}|cal:[A-Za-z0-9_.-]{1,32}|target:[A-Za-z0-9_.-]{1,32}|zero|span)$"
CYLINDER_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"

DEFAULT_SCALES = species.scales()


class StreamConfig(StrictModel):
    name: str = Field(pattern=STREAM_PATTERN)
    port: int = Field(ge=1, description="valve position that selects this stream")
    flush_s: float = Field(default=180.0, ge=0, description="seconds flagged after switching here")
    positions: dict[str, Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        description="with several valves: valve id -> position, for each valve that selects this stream"
        " (valves left out stay where they are); `port` is then the stream's number",
    )


class Schedule(StrictModel):
    """When a run is due: every `interval_hours` from midnight UTC + `offset_hours`, or a
    5-field crontab line in UTC."""

    interval_hours: float | None = Field(default=None, gt=0)
    offset_hours: float = Field(default=0.0, ge=0)
    cron: str | None = Field(default=None, description="crontab line, UTC, e.g. '0 */6 * * *'")

    @model_validator(mode="after")
    def _one(self) -> "Schedule":
        if (self.interval_hours is None) == (self.cron is None):
            raise ValueError("give exactly one of interval_hours or cron")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r}: {exc}") from None
        return self


class AmbientStep(StrictModel):
    stream: str = Field(pattern=STREAM_PATTERN)
    duration_s: float = Field(gt=0)


class CalibrationRun(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    standards: list[str] = Field(min_length=2, description="cylinder ids, each with a cal:<id> stream")
    measure_s: float = Field(default=1800.0, gt=0, description="time on each standard, flush included")
    cycles: int = Field(default=4, ge=1)
    use_last_minutes: int = Field(default=10, ge=1)
    skip_first_cycles: int = Field(default=0, ge=0)
    degree: Literal[1, 2] = 1
    long_term_target: str | None = Field(
        default=None, description="a target cylinder measured at the end of each run"
    )
    schedule: Schedule
    priority: int = 20


class TargetRun(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    cylinder: str = Field(pattern=CYLINDER_ID)
    measure_s: float = Field(default=1200.0, gt=0)
    cycles: int = Field(default=1, ge=1)
    use_last_minutes: int = Field(default=10, ge=1)
    schedule: Schedule
    priority: int = 10


class CheckRun(StrictModel):
    """A zero or span check: measure the stream, report the mean as an event, and, when `correct`
    says so, correct the following minutes (ghgnet.processing.check_correction): a zero check the
    offset, a span check the gain, on top of the calibration in force, until the next full
    calibration (which supersedes every correction before it)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    stream: Literal["zero", "span"]
    measure_s: float = Field(default=600.0, gt=0)
    use_last_minutes: int = Field(default=5, ge=1)
    correct: Literal["none", "offset", "gain"] = Field(
        default="none", description="what the check corrects: none (report only), offset (a zero check) or gain"
        " (a span check)")
    cylinder: str | None = Field(
        default=None, pattern=CYLINDER_ID,
        description="the registry's cylinder on this stream (its assigned values); default: the one active"
        " cylinder of role zero/span, and for a zero check with none, 0 for every species")
    schedule: Schedule
    priority: int = 5

    @model_validator(mode="after")
    def _sensible(self) -> "CheckRun":
        if (self.stream, self.correct) in (("zero", "gain"), ("span", "offset")):
            raise ValueError(f"a {self.stream} check corrects the {'offset' if self.stream == 'zero' else 'gain'}"
                             f" (or none), not the {self.correct}")
        return self


class PerformanceTestRun(StrictModel):
    """The instrument performance test protocol (the preset: the ICOS ATC Metrology Laboratory's
    tests, Yver Kwok et al. 2015, AMT 8, 3867; see ghgnet.processing.performance_test): one
    cylinder measured continuously (24 h), then cylinders in cycles (long-term repeatability and
    drift), then a humidified cylinder (water vapour test). Started by a technician
    (`station-agent calibrate now NAME`) unless it has a schedule. The report is built at central
    from the forwarded minutes (`central-receiver instrument-test`)."""

    name: str = Field(default="performance-test", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    continuous: str = Field(pattern=STREAM_PATTERN, description="the cylinder stream measured continuously")
    continuous_s: float = Field(default=86400.0, gt=0, description="24 h at the ICOS ATC")
    cycle: list[Annotated[str, Field(pattern=STREAM_PATTERN)]] = Field(
        min_length=1, description="cylinder streams measured in turn")
    cycle_measure_s: float = Field(default=1800.0, gt=0)
    cycles: int = Field(default=12, ge=1)
    water: str | None = Field(default=None, pattern=STREAM_PATTERN,
                              description="the humidified cylinder's stream (water vapour test)")
    water_s: float = Field(default=14400.0, gt=0)
    schedule: Schedule | None = Field(default=None, description="default: run only on request")
    priority: int = 30


class Interlock(StrictModel):
    """Suspend the sequence (and flag the minutes) while a device's value is outside [min, max]."""

    device: str
    quantity: str
    min: float | None = None
    max: float | None = None
    resume_after_s: float = Field(default=60.0, ge=0, description="in range this long before resuming")
    stale_s: float = Field(default=120.0, gt=0, description="no value this long counts as tripped")


class SamplingConfig(StrictModel):
    valve: str | list[str] = Field(
        description="id of the valve that selects the streams, or the ids of valves in series, moved in"
        " this order (each stream then gives its `positions`)"
    )
    analyzers: list[str] | None = Field(
        default=None, description="ids of the analyzers on the valve's manifold; default: every analyzer"
    )
    own_lines: dict[str, Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]] = Field(
        default_factory=dict,
        description="analyzer id -> inlet name, for analyzers on a line of their own (not on the valve's"
        " manifold): their minutes carry stream inlet:<name> and the reason uncalibrated",
    )
    safe_stream: str = Field(pattern=STREAM_PATTERN, description="where the valve parks (SIGTERM, failures)")
    preset: Literal["icos", "urban"] | None = None
    streams: list[StreamConfig] = Field(min_length=1)
    ambient: list[AmbientStep] = Field(min_length=1, description="the ambient inlet cycle")
    calibrations: list[CalibrationRun] = Field(default_factory=list)
    targets: list[TargetRun] = Field(default_factory=list)
    checks: list[CheckRun] = Field(default_factory=list)
    performance_tests: list[PerformanceTestRun] = Field(default_factory=list)
    interlocks: list[Interlock] = Field(default_factory=list)
    calibrate_at_start: bool = Field(
        default=True, description="run the first calibration at once when there is no valid one"
    )
    settle_s: float = Field(default=2.0, ge=0, description="wait after a move before reading it back")
    move_retries: int = Field(default=2, ge=0, description="moves re-commanded after a mismatch")
    goals: dict[str, float] = Field(
        default_factory=species.goals,
        description="compatibility goals for target biases (species units)",
    )
    drift_limits: dict[str, float] = Field(
        default_factory=species.goals,
        description="largest change between consecutive calibrations at the reference level",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "SamplingConfig":
        names = [s.name for s in self.streams]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"stream(s) defined twice: {sorted(dupes)}")
        ports = [s.port for s in self.streams]
        if len(set(ports)) != len(ports):
            raise ValueError("two streams share one valve port")
        known = set(names)
        self._check_positions()
        self._apply_preset()
        missing = []
        if self.safe_stream not in known:
            missing.append(f"safe_stream {self.safe_stream}")
        missing += [f"ambient {a.stream}" for a in self.ambient if a.stream not in known]
        for c in self.calibrations:
            missing += [f"calibration {c.name}: cal:{s}" for s in c.standards if f"cal:{s}" not in known]
            if c.long_term_target and f"target:{c.long_term_target}" not in known:
                missing.append(f"calibration {c.name}: target:{c.long_term_target}")
        missing += [f"target {t.name}: target:{t.cylinder}" for t in self.targets if f"target:{t.cylinder}" not in known]
        missing += [f"check {c.name}: {c.stream}" for c in self.checks if c.stream not in known]
        for p in self.performance_tests:
            missing += [f"performance test {p.name}: {s}" for s in [p.continuous, *p.cycle, *([p.water] if p.water
                                                                                          else [])] if s not in known]
        if missing:
            raise ValueError(f"unknown stream(s): {', '.join(missing)}; defined: {', '.join(names)}")
        run_names = [r.name for r in [*self.calibrations, *self.targets, *self.checks, *self.performance_tests]]
        if len(set(run_names)) != len(run_names):
            raise ValueError("two runs share one name")
        return self

    def valve_ids(self) -> list[str]:
        return [self.valve] if isinstance(self.valve, str) else list(self.valve)

    def _check_positions(self) -> None:
        if isinstance(self.valve, str):
            given = [s.name for s in self.streams if s.positions is not None]
            if given:
                raise ValueError(f"stream(s) {given} give positions, but there is one valve: give their port only")
            return
        if len(set(self.valve)) != len(self.valve) or not self.valve:
            raise ValueError(f"valve: a list of distinct valve ids, got {self.valve}")
        seen: dict[tuple, str] = {}
        for s in self.streams:
            if not s.positions:
                raise ValueError(f"stream {s.name}: with several valves give its positions, e.g. "
                                 f"positions = {{ {self.valve[0]} = {s.port} }}")
            unknown = sorted(set(s.positions) - set(self.valve))
            if unknown:
                raise ValueError(f"stream {s.name}: positions name valve(s) {unknown} not in valve = {self.valve}")
            key = tuple(sorted(s.positions.items()))
            if key in seen:
                raise ValueError(f"streams {seen[key]} and {s.name} select the same valve positions")
            seen[key] = s.name

    def _apply_preset(self) -> None:
        cals = [s.name[4:] for s in self.streams if s.name.startswith("cal:")]
        tgts = [s.name[7:] for s in self.streams if s.name.startswith("target:")]
        if self.preset == "icos" and not self.calibrations and len(cals) >= 2:
            self.calibrations = [CalibrationRun(
                name="icos-calibration", standards=cals, measure_s=1800, cycles=4, use_last_minutes=10,
                long_term_target=tgts[1] if len(tgts) > 1 else None,
                schedule=Schedule(interval_hours=360), priority=20)]
        if self.preset == "icos" and not self.targets and tgts:
            self.targets = [TargetRun(name="icos-short-term-target", cylinder=tgts[0], measure_s=1200,
                                      use_last_minutes=10, schedule=Schedule(interval_hours=7))]
        if self.preset == "urban" and not self.calibrations and len(cals) >= 2:
            self.calibrations = [CalibrationRun(
                name="urban-calibration", standards=cals[:3], measure_s=300, cycles=1, use_last_minutes=2,
                schedule=Schedule(interval_hours=3), priority=20)]
        if self.preset == "urban" and not self.targets and tgts:
            self.targets = [TargetRun(name="urban-target", cylinder=tgts[0], measure_s=300, use_last_minutes=2,
                                      schedule=Schedule(interval_hours=6))]

    def stream(self, name: str) -> StreamConfig:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(name)

    def stream_at_port(self, port: int) -> StreamConfig | None:
        return next((s for s in self.streams if s.port == port), None)


SpeciesName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,16}$")]
ScaleName = Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00]*$")]
MAX_SPECIES = 16
"""Species one cylinder may carry values for."""


class CylinderConfig(StrictModel):
    """A cylinder as the station knows it: its assigned values belong to a calibration scale.
    Free text is bounded: serial and scale names at most 64 characters, species names at most 16
    (lower case, digits, _), at most 16 species. `traceability`: how its values were assigned
    (by `station-agent cylinders assign`: the references it was measured against, their values,
    scales and own chains, the uncertainty budget); empty for a cylinder entered by hand."""

    id: str = Field(pattern=CYLINDER_ID)
    role: Literal["standard", "target", "zero", "span"]
    serial: str = Field(default="", max_length=64, pattern=r"^[^\x00]*$")
    assigned: dict[SpeciesName, float] = Field(
        max_length=MAX_SPECIES, description="assigned dry mole fraction per species (ppm CO2, ppb others)")
    uncertainty: dict[SpeciesName, float] = Field(default_factory=dict, max_length=MAX_SPECIES)
    scale: dict[SpeciesName, ScaleName] = Field(default_factory=dict, max_length=MAX_SPECIES,
                                                description="default: current WMO scales")
    fill_date: date | None = None
    pressure_bar: float | None = Field(default=None, ge=0)
    low_pressure_bar: float = Field(default=20.0, ge=0, description="warn below this pressure")
    traceability: dict[str, Any] = Field(default_factory=dict, description="the value assignment's record")

    def scales(self) -> dict[str, str]:
        return {sp: self.scale.get(sp, DEFAULT_SCALES.get(sp, "")) for sp in self.assigned}
