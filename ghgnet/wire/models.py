"""The pydantic models of the contract: field types, records, envelopes, status and ack.

They are the contract: every other decoder accepts a subset of what they accept, with the same values.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from ghgnet.timeutil import iso_utc

from .acks import SeqRanges
from .topics import STATION_ID_PATTERN

SCHEMA_VERSION = 1
STORE_ID_PATTERN = r"^[0-9a-f]{32}$"
"""A station database's identity: a random UUID's hex digits, lower case (`uuid.uuid4().hex`)."""
STORE_RE = re.compile(STORE_ID_PATTERN)
MAX_SEQ = 2**63 - 1
"""Largest seq: a signed 64-bit integer, what SQLite and PostgreSQL bigint hold."""
DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576

BatchKind = Literal["minute", "calibration", "event", "emission"]


# ---------------------------------------------------------------------------------------------
# Field types


NO_NUL = r"^[^\x00]*$"


def _check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("string holds a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string holds a lone surrogate (not valid UTF-8)") from None
    return value


WireStr = Annotated[str, StringConstraints(pattern=NO_NUL)]
"""A string without NUL (JSON cannot carry lone surrogates: the parser refuses them)."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
"""Short identifiers: device, stream, species, cylinder and calibration ids."""

StoreId = Annotated[str, StringConstraints(pattern=STORE_ID_PATTERN)]
"""The identity of the station database a batch comes from (see the module docstring)."""

MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)
"""Times outside these are refused: they cannot be real, and ISO strings stay fixed-width (sortable)."""


def _utc_in_range(t: datetime) -> datetime:
    if t.tzinfo is not UTC:
        try:
            t = t.astimezone(UTC)
        except OverflowError:
            raise ValueError("time out of range") from None
    if not MIN_TIME <= t <= MAX_TIME:
        raise ValueError(f"time {t.isoformat()} outside {MIN_TIME.year}-{MAX_TIME.year}")
    return t


def utc_time(value: Any) -> datetime:
    """Parse a time given as an ISO 8601 string with a zone (for envelope fields checked by hand)."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 UTC time string, got {type(value).__name__}")
    try:
        return _UTC_TIME_JSON.validate_json(json.dumps(value))
    except ValidationError as exc:
        raise ValueError(exc.errors(include_url=False)[0]["msg"]) from None


UtcTime = Annotated[
    AwareDatetime,
    AfterValidator(_utc_in_range),
    PlainSerializer(iso_utc, return_type=str, when_used="json"),
]
"""A timezone-aware UTC datetime; on the wire an ISO 8601 string with a zone (Z on output,
milliseconds). A time without a zone is refused."""
_UTC_TIME_JSON: TypeAdapter[datetime] = TypeAdapter(UtcTime, config=ConfigDict(strict=True))

Seq = Annotated[StrictInt, Field(ge=1, le=MAX_SEQ)]
FiniteFloat = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Count = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]


def _json_value(value: Any, depth: int = 0) -> Any:
    if depth > 16:
        raise ValueError("JSON nested deeper than 16 levels")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("number is not finite")
        return value
    if isinstance(value, str):
        return _check_text(value)
    if isinstance(value, list):
        return [_json_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("object keys must be strings")
            out[_check_text(k)] = _json_value(v, depth + 1)
        return out
    raise ValueError(f"not a JSON value: {type(value).__name__}")


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return _json_value(value)


JsonObject = Annotated[dict[str, Any], PlainValidator(_json_object)]
"""Free-form JSON object: finite numbers, clean strings, at most 16 levels deep."""


class WireModel(BaseModel):
    """Base of every wire model: unknown keys refused, floats finite, no type coercion."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


# ---------------------------------------------------------------------------------------------
# Records


class SpeciesStats(WireModel):
    """One species over one minute, in its unit (CO2 ppm; CH4, CO, N2O ppb). `u`: the standard
    uncertainty of cal_mean (ghgnet.processing.uncertainty), absent while unknown."""

    mean: FiniteFloat | None
    std: FiniteFloat | None
    n: Count
    raw_mean: FiniteFloat | None
    cal_mean: FiniteFloat | None = None
    u: Annotated[FiniteFloat, Field(ge=0)] | None = None


class MinuteWire(WireModel):
    seq: Seq
    time: UtcTime
    device: Name
    stream: Name
    species: dict[Name, SpeciesStats]
    h2o: FiniteFloat | None = None
    flag: Annotated[WireStr, Field(pattern=r"^[A-Z]$")]
    reasons: list[Name] = Field(default_factory=list, max_length=64)
    n_total: Count = 0
    calibration_id: Name | None = None
    diagnostics: dict[Name, FiniteFloat] = Field(default_factory=dict)


class EventWire(WireModel):
    seq: Seq
    time: UtcTime
    kind: Name
    severity: Literal["debug", "info", "warning", "error", "critical"]
    message: Annotated[WireStr, Field(max_length=4000)]
    device: Name | None = None
    data: JsonObject = Field(default_factory=dict)


class StandardWire(WireModel):
    cylinder: Name
    measured: dict[Name, FiniteFloat | None]
    assigned: dict[Name, FiniteFloat]
    scale: dict[Name, Name] = Field(default_factory=dict)


class FitWire(WireModel):
    """A calibration fit for one species: coefficients lowest order first (intercept, slope, ...).
    `covariance`: the coefficients' covariance matrix (same order), `method` how the fit was
    weighted (ols, york, wls-ev), `mswd` its reduced chi-square, `scale` the calibration scale of
    the assigned values it was fitted on (ghgnet.processing.calibration); all optional."""

    coefficients: list[FiniteFloat]
    residuals: list[FiniteFloat] = Field(default_factory=list)
    r2: FiniteFloat | None = None
    rmse: FiniteFloat | None = None
    n: Count = 0
    covariance: list[list[FiniteFloat]] | None = None
    method: Name | None = None
    mswd: FiniteFloat | None = None
    scale: Name | None = None

    @model_validator(mode="after")
    def _square(self) -> FitWire:
        k = len(self.coefficients)
        if self.covariance is not None and (len(self.covariance) != k or any(len(r) != k for r in self.covariance)):
            raise ValueError(f"covariance must be {k} x {k}, one row and column per coefficient")
        return self


class CalibrationWire(WireModel):
    seq: Seq
    record_type: Literal["calibration"]
    id: Name
    time_start: UtcTime
    time_end: UtcTime
    standards: list[StandardWire]
    fits: dict[Name, FitWire]

    @model_validator(mode="after")
    def _ordered(self) -> CalibrationWire:
        if self.time_end < self.time_start:
            raise ValueError("time_end is before time_start")
        return self


class TargetWire(WireModel):
    seq: Seq
    record_type: Literal["target"]
    id: Name
    time: UtcTime
    cylinder: Name
    measured: dict[Name, FiniteFloat | None]
    assigned: dict[Name, FiniteFloat]
    bias: dict[Name, FiniteFloat | None]
    within_goal: dict[Name, StrictBool | None]
    u: dict[Name, Annotated[FiniteFloat, Field(ge=0)] | None] = Field(default_factory=dict)
    """Standard uncertainty of each bias (the calibrated mean's and the target's assigned one)."""
    within_u: dict[Name, StrictBool | None] = Field(default_factory=dict)
    """|bias| <= 2u per species."""


class EmissionWire(WireModel):
    """A stack CEMS's emission minute or hour (station_agent/emission/): `operating_h` the unit's
    operating time in it (h), CO2 dry (% vol) and standard dry flow (m3/h at 273.15 K, 101.325 kPa),
    CO2 mass (kg; null when it could not be measured or substituted). A minute says whether each
    monitor was valid and why not (`reasons`); an hour gives each value's method-of-determination
    code (`co2_modc`, `flow_modc`: 01 measured, H1-H9 HJ 75-2017, 06-12 Part 75)."""

    seq: Seq
    period: Literal["minute", "hour"]
    unit: Name
    time: UtcTime
    operating_h: Annotated[FiniteFloat, Field(ge=0, le=1)]
    co2_dry_pct: FiniteFloat | None = None
    standard_flow_m3_h: FiniteFloat | None = None
    mass_kg: FiniteFloat | None = None
    co2_valid: StrictBool | None = None
    flow_valid: StrictBool | None = None
    co2_modc: Annotated[WireStr, Field(max_length=8)] | None = None
    flow_modc: Annotated[WireStr, Field(max_length=8)] | None = None
    reasons: list[Name] = Field(default_factory=list, max_length=64)


class FluxWire(WireModel):
    """One eddy-covariance averaging period (mirrors station_agent.processing.flux.HalfHourFlux's
    as_dict(); a NaN there, not computable, is null here). Stamped at the START of the period."""

    seq: Seq
    start: UtcTime
    duration_s: Annotated[FiniteFloat, Field(gt=0)]
    path: Literal["open", "closed"]
    n_records: Count
    n_valid: Count
    spikes: dict[Name, Count] = Field(default_factory=dict)
    rotation: Name
    yaw_deg: FiniteFloat | None
    pitch_deg: FiniteFloat | None
    roll_deg: FiniteFloat | None
    lag_co2_s: FiniteFloat | None
    lag_h2o_s: FiniteFloat | None
    lag_co2_nominal: StrictBool
    lag_h2o_nominal: StrictBool
    mean_wind_ms: FiniteFloat | None
    wind_dir_deg: FiniteFloat | None
    air_temperature_k: FiniteFloat | None
    sonic_temperature_k: FiniteFloat | None
    pressure_pa: FiniteFloat | None
    air_density_kg_m3: FiniteFloat | None
    co2_mean: FiniteFloat | None
    h2o_mean: FiniteFloat | None
    ustar_ms: FiniteFloat | None
    tau_n_m2: FiniteFloat | None
    sigma_w_ms: FiniteFloat | None
    obukhov_m: FiniteFloat | None
    z_over_l: FiniteFloat | None
    h_w_m2: FiniteFloat | None
    le_w_m2: FiniteFloat | None
    co2_flux_umol_m2_s: FiniteFloat | None
    h2o_flux_mmol_m2_s: FiniteFloat | None
    h_scf: FiniteFloat | None
    le_scf: FiniteFloat | None
    co2_scf: FiniteFloat | None
    steady_h_pct: FiniteFloat | None
    steady_le_pct: FiniteFloat | None
    steady_co2_pct: FiniteFloat | None
    itc_pct: FiniteFloat | None
    flag_h: Annotated[StrictInt, Field(ge=0, le=2)]
    flag_le: Annotated[StrictInt, Field(ge=0, le=2)]
    flag_co2: Annotated[StrictInt, Field(ge=0, le=2)]
    footprint_peak_m: FiniteFloat | None
    footprint_x70_m: FiniteFloat | None
    footprint_x90_m: FiniteFloat | None
    cov: dict[Name, FiniteFloat | None] = Field(default_factory=dict)


CalibrationRecord = Annotated[Union[CalibrationWire, TargetWire], Field(discriminator="record_type")]
WireRecord = Union[MinuteWire, EventWire, CalibrationWire, TargetWire, EmissionWire, FluxWire]

RECORD_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "minute": TypeAdapter(MinuteWire),
    "event": TypeAdapter(EventWire),
    "calibration": TypeAdapter(CalibrationRecord),
    "emission": TypeAdapter(EmissionWire),
    "flux": TypeAdapter(FluxWire),
}


# ---------------------------------------------------------------------------------------------
# Envelopes


class _Envelope(WireModel):
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, alias="schema")
    station: Annotated[WireStr, Field(pattern=STATION_ID_PATTERN)]

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class _BatchEnvelope(_Envelope):
    store: StoreId | None = None


class _MinuteBatchIn(_BatchEnvelope):
    kind: Literal["minute"]
    sent: UtcTime
    records: list[MinuteWire]


class _EventBatchIn(_BatchEnvelope):
    kind: Literal["event"]
    sent: UtcTime
    records: list[EventWire]


class _CalibrationBatchIn(_BatchEnvelope):
    kind: Literal["calibration"]
    sent: UtcTime
    records: list[CalibrationRecord]


class _EmissionBatchIn(_BatchEnvelope):
    kind: Literal["emission"]
    sent: UtcTime
    records: list[EmissionWire]


class _FluxBatchIn(_BatchEnvelope):
    kind: Literal["flux"]
    sent: UtcTime
    records: list[FluxWire]


# A whole batch by kind, validated in one pass by pydantic-core (parse_batch's first try).
BATCH_MODELS: dict[str, type[_BatchEnvelope]] = {
    "minute": _MinuteBatchIn, "event": _EventBatchIn, "calibration": _CalibrationBatchIn,
    "emission": _EmissionBatchIn,
    "flux": _FluxBatchIn,
}


class StatusMessage(_Envelope):
    state: Literal["up", "down"]
    time: UtcTime
    backlog: Count = 0
    oldest_unacked_age_s: Annotated[FiniteFloat, Field(ge=0)] | None = None
    agent_version: Annotated[WireStr, Field(max_length=64)] = ""
    interval_s: Annotated[FiniteFloat, Field(gt=0)] | None = None
    last_seq: Annotated[StrictInt, Field(ge=0, le=MAX_SEQ)] | None = None
    details: JsonObject = Field(default_factory=dict)


class AckMessage(_Envelope):
    store: StoreId | None = None
    acked: list[tuple[Seq, Seq]]

    @field_validator("acked")
    @classmethod
    def _ranges_ordered(cls, v: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for lo, hi in v:
            if lo > hi:
                raise ValueError(f"range [{lo}, {hi}] has lo > hi")
        return v

    def ranges(self) -> SeqRanges:
        return SeqRanges(self.acked)
