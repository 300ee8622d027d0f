"""The MQTT wire contract between a station and central: topics, payload models, acks.

Both sides import this package (central imports nothing else from the station). Version 1:

Topics
    ``ghg/v1/<station>/minute``       station -> central, QoS 1, batches of minute records
    ``ghg/v1/<station>/calibration``  station -> central, QoS 1, calibration and target results
    ``ghg/v1/<station>/event``        station -> central, QoS 1, events
    ``ghg/v1/<station>/emission``     station -> central, QoS 1, a stack CEMS's emission minutes and hours
    ``ghg/v1/<station>/flux``         station -> central, QoS 1, half-hourly eddy-covariance fluxes
    ``ghg/v1/<station>/status``       station -> central, QoS 1, retained; also the last will
    ``ghg/v1/<station>/ack``          central -> station, QoS 1, sent only after central's commit
    ``ghg/v1/<station>/raw``          station -> central, QoS 1, raw readings (L0) in chunks (`raw`)
    ``ghg/v1/<station>/raw_ack``      central -> station, QoS 1, a raw chunk's ack, after central's commit

Batch payload (UTF-8 JSON, one object)::

    {"schema": 1, "station": "<id>", "store": "<32 hex digits>", "kind": "minute"|"calibration"|"event"|"emission"|"flux",
     "sent": "<ISO 8601 Z>", "records": [{"seq": <int >= 1>, ...record fields}, ...]}

``store`` is the identity of the station database the records come from, created with it (a random
UUID's 32 hex digits): a station whose database is replaced starts again at seq 1 under a new store,
so central keys records by (station, store, seq). A batch without it comes from a station older than
store identities (the "legacy" store). ``seq`` is per store and monotonic across all kinds, so one
topic sees gaps. Record fields:

- minute (mirrors ``ghgnet.records.MinuteRecord``): ``time`` (start of the minute, UTC),
  ``device``, ``stream``, ``species`` {name: {mean, std, n, raw_mean, cal_mean}} (CO2 ppm; CH4, CO,
  N2O ppb), ``h2o`` (%), ``flag`` (one ICOS letter: U, N, O, K, R, H), ``reasons`` [codes],
  ``n_total``, ``calibration_id``, ``diagnostics`` {name: float}.
- event: ``time``, ``kind``, ``severity`` (info|warning|error|critical), ``message``, ``device``,
  ``data`` (any JSON object).
- calibration, discriminated by ``record_type``:
  ``"calibration"``: ``id``, ``time_start``, ``time_end``,
  ``standards`` [{cylinder, measured {sp: v}, assigned {sp: v}, scale {sp: name}}],
  ``fits`` {sp: {coefficients [...], residuals [...], r2, rmse, n}};
  ``"target"``: ``id``, ``time``, ``cylinder``, ``measured``, ``assigned``, ``bias`` {sp: v}
  (measured - assigned), ``within_goal`` {sp: bool}.
- emission (a stack CEMS, ``station_agent/emission/``): ``period`` (minute|hour), ``unit``, ``time``
  (start of the period, UTC), ``operating_h`` (0..1), ``co2_dry_pct`` (% vol, dry),
  ``standard_flow_m3_h`` (m3/h, dry, 273.15 K and 101.325 kPa), ``mass_kg`` (CO2), minutes
  ``co2_valid``, ``flow_valid``, ``reasons`` [codes], hours ``co2_modc``, ``flow_modc`` (method of
  determination: 01 measured, H1-H9 HJ 75-2017, 06-12 US Part 75). Central keys it like every record
  and keeps one per (station, store, seq).
- flux (mirrors ``station_agent.processing.flux.HalfHourFlux.as_dict()``): ``start`` (start of the
  averaging period, UTC), ``duration_s``, ``path`` (open|closed), counts, rotation angles, lags,
  means, ``ustar_ms``, ``h_w_m2``, ``le_w_m2`` (W m-2), ``co2_flux_umol_m2_s``,
  ``h2o_flux_mmol_m2_s``, spectral correction factors, test results (%), ``flag_h``/``flag_le``/
  ``flag_co2`` (Mauder and Foken 0/1/2), footprint distances (m), ``cov`` {name: value}; a value not
  computable is null. The lean encoding carries it in its JSON form, as any record but a minute.

Every float is finite or null (NaN and Infinity are not JSON); every time is an ISO 8601 string
with a zone (``Z`` on output); every object refuses unknown keys; no string may hold NUL or a lone
surrogate (neither survives a database).

Ack payload (central -> station)::

    {"schema": 1, "station": "<id>", "store": "<32 hex digits>", "acked": [[lo, hi], ...]}

inclusive seq ranges of that store central now holds (``store`` only when the batches carried one: a
station older than store identities refuses an ack with a key it does not know): records newly stored, duplicates already stored, and single
records central dead-lettered (so a station never resends a poison record forever). A payload
rejected as a whole (oversize, malformed JSON, unknown schema, station or kind differing from the
topic, an envelope that does not validate) is dead-lettered and acked to nobody.

Status payload (retained; the last will is the same with ``"state": "down"``)::

    {"schema": 1, "station": ..., "state": "up"|"down", "time": ..., "backlog": int,
     "oldest_unacked_age_s": float|null, "agent_version": str,
     "interval_s": float|null, "last_seq": int|null, "details": {...}}

``interval_s`` is how often the station republishes its status (central calls a station down after
two missed intervals); ``details`` carries free-form extras without a schema change.

Encodings of a batch (announced by the MQTT v5 Content Type of its message):

- none, or ``application/json``: the JSON above;
- ``ghg-lean/1``: the lean encoding for metered links (`lean`: positional MessagePack, DEFLATE with a
  preset dictionary), which stands for exactly one JSON batch: central turns it back into that and
  validates it like any other, so a record sent once in each encoding is stored once. A station
  chooses with ``[forwarding] encoding = "json" | "lean"``; central reads every version it knows
  and dead-letters an unknown content type (``unknown_content_type``), a broken lean payload
  (``malformed_lean``) and one that inflates beyond its payload limit (``oversize``).

Acks and statuses are JSON in every case.

The package: `models` (the pydantic contract), `topics`, `acks` (seq ranges), `parse` (received
messages against the models), `encode` (batches, acks, status), `lean` (the lean encoding);
`errors` (WireError by reason); `raw` (raw-reading chunks, L0, and their acks).
"""

from __future__ import annotations

from .acks import SeqRanges, compress_ranges, compress_seqs
from .encode import BatchEncoder, encode_ack, encode_batch, encode_status, record_to_json
from .errors import (
    BadTopic,
    InvalidPayload,
    KindMismatch,
    MalformedJSON,
    MalformedLean,
    PayloadTooLarge,
    StationMismatch,
    UnknownContentType,
    UnknownSchema,
    WireError,
)
from .lean import ENCODINGS, JSON_CONTENT_TYPE, LEAN_CONTENT_TYPE, LeanEncoder, batch_json, lean_to_json
from .models import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_SEQ,
    MAX_TIME,
    MIN_TIME,
    SCHEMA_VERSION,
    STORE_ID_PATTERN,
    AckMessage,
    BatchKind,
    CalibrationRecord,
    CalibrationWire,
    Count,
    EmissionWire,
    EventWire,
    FiniteFloat,
    FitWire,
    FluxWire,
    JsonObject,
    MinuteWire,
    Name,
    Seq,
    SpeciesStats,
    StandardWire,
    StatusMessage,
    StoreId,
    TargetWire,
    UtcTime,
    WireModel,
    WireRecord,
    WireStr,
)
from .parse import ParsedBatch, RejectedRecord, describe_validation_error, parse_ack, parse_batch, parse_status
from .topics import (
    ALL_KINDS,
    BATCH_KINDS,
    RAW_KINDS,
    STATION_ID_PATTERN,
    TOPIC_ROOT,
    UPLINK_KINDS,
    check_station_id,
    parse_topic,
    raw_subscription_filter,
    subscription_filters,
    topic_for,
)

__all__ = [
    "ALL_KINDS", "BATCH_KINDS", "RAW_KINDS", "raw_subscription_filter", "DEFAULT_MAX_PAYLOAD_BYTES", "ENCODINGS", "JSON_CONTENT_TYPE", "LEAN_CONTENT_TYPE",
    "LeanEncoder", "MalformedLean", "UnknownContentType", "batch_json", "lean_to_json", "MAX_SEQ", "MAX_TIME", "MIN_TIME",
    "SCHEMA_VERSION", "STATION_ID_PATTERN", "STORE_ID_PATTERN", "TOPIC_ROOT", "UPLINK_KINDS",
    "AckMessage", "BadTopic", "BatchEncoder", "BatchKind", "CalibrationRecord", "CalibrationWire",
    "Count", "EmissionWire", "EventWire", "FiniteFloat", "FitWire", "FluxWire", "InvalidPayload", "JsonObject", "KindMismatch",
    "MalformedJSON", "MinuteWire", "Name", "ParsedBatch", "PayloadTooLarge", "RejectedRecord", "Seq",
    "SeqRanges", "SpeciesStats", "StandardWire", "StationMismatch", "StatusMessage", "StoreId",
    "TargetWire", "UnknownSchema", "UtcTime", "WireError", "WireModel", "WireRecord", "WireStr",
    "check_station_id", "compress_ranges", "compress_seqs", "describe_validation_error", "encode_ack",
    "encode_batch", "encode_status", "parse_ack", "parse_batch", "parse_status", "parse_topic",
    "record_to_json", "subscription_filters", "topic_for",
]
