"""From an HJ 212 data packet to the batch central stores: pure, no I/O.

Idempotency (the same MN, CN and DataTime stored once) reuses the store's own key, (station, store,
seq), so nothing downstream needs to know HJ 212 exists:

- `store` is a dedicated identity per logger and command, `uuid5(MN, CN[, part])`: 32 hex digits as
  a station database's identity, stable across restarts, never shared with an MQTT station's store;
- `seq` is the period index of DataTime: minutes since 1970 for 2051, hours for 2061, days for 2031,
  seconds for 2011. A resent packet maps to the same key: counted as a duplicate and acknowledged;
  one resent with other values is a conflict: the stored copy stays, the new one is dead-lettered and
  an alarm raised, as for MQTT.

Minute data (2051) become minute records (device and stream from the logger's config; the logger's
values are its final ones, so `mean` = `cal_mean` = the value in ghgnet units, `raw_mean` unknown), which
aggregation, QC, export and the dashboard take like any station's. Real-time (2011), hour (2061) and
day (2031) data become events (`hj212_realtime`, `hj212_hour`, `hj212_day`) holding the converted
values and the CP as sent: kept and visible, but central computes its own hours from minutes.

A split packet's parts (PNUM/PNO) are stored each as it comes, each under the store of its part and,
for minutes, the device `<device>-p<PNO>`, so that the latest-record-per-minute rule of aggregation
never lets one part hide another's species. Every part must then carry DataTime (as
`ghgnet.hj212.split_packet` builds them); a logger that continues CP across parts without it is
refused (`no_data_time`). Reassembling instead would need the first parts acknowledged before
anything is committed, which the standard's per-packet 9014 and our commit-then-ack rule exclude.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from ghgnet.hj212 import Packet, PacketError, codes, parse_data_time
from ghgnet.timeutil import iso_utc
from ghgnet.wire import MAX_TIME, MIN_TIME, EventWire, ParsedBatch

from ..lean_minutes import MinuteLean, SpeciesLean
from .config import LoggerConfig

STORE_NAMESPACE = uuid.UUID("5b0c7f4e-2f1a-5d6e-9b1c-212212212212")
"""Namespace of the HJ 212 store identities (any fixed UUID: changing it would re-key every logger)."""
SEQ_PERIOD_S = {codes.CN_REALTIME: 1, **codes.PERIOD_SECONDS}
EVENT_KINDS = {codes.CN_REALTIME: "hj212_realtime", codes.CN_HOUR: "hj212_hour", codes.CN_DAY: "hj212_day"}


class Refused(Exception):
    """A data packet that cannot become a record; `code` is a stable counter label."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@lru_cache(maxsize=65536)
def logger_store(mn: str, cn: str, pno: int | None = None) -> str:
    """The store identity of one logger's data of one command (and one part of split packets)."""
    name = f"hj212/{mn}/{cn}" + ("" if pno is None else f"/part{pno}")
    return uuid.uuid5(STORE_NAMESPACE, name).hex


def period_seq(t: datetime, cn: str) -> int:
    """The seq of DataTime `t` (UTC) for command `cn`: its period's index since 1970; a time before
    1970 is refused (seqs start at 1)."""
    seq = int(t.timestamp()) // SEQ_PERIOD_S[cn]
    if seq < 1:
        raise Refused("bad_data_time", f"DataTime {t.isoformat()} is before 1970")
    return seq


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Refused("bad_value", f"{key}={text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise Refused("bad_value", f"{key}={text!r} is not finite")
    return value


class FactorValue(NamedTuple):
    """A tuple (a third of a frozen dataclass's cost to make; made for every factor of every packet)."""

    species: str
    value: float | None
    minimum: float | None
    maximum: float | None
    flag: str


def _converted(code: str, suffix: str, items: dict[str, str], species: str, unit: str) -> float | None:
    text = items.get(suffix)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = _number(f"{code}-{suffix}", text)  # raises, naming the field
    if value - value != 0.0:  # inf or nan
        value = _number(f"{code}-{suffix}", text)
    return codes.from_wire_value(value, species, unit)


def factor_values(packet: Packet, logger: LoggerConfig) -> list[FactorValue]:
    """The logger's configured factors found in the packet, converted to ghgnet units. The value is
    `-Avg` (minute, hour, day) or `-Rtd` (real-time); the flag `-Flag` (N when absent)."""
    out = []
    found = packet.factors()
    for code, fmap in logger.factors.items():
        items = found.get(code)
        if not items:
            continue
        species, unit = fmap.species, fmap.unit
        value = _converted(code, "Avg" if "Avg" in items else "Rtd", items, species, unit)
        minimum = _converted(code, "Min", items, species, unit) if "Min" in items else None
        maximum = _converted(code, "Max", items, species, unit) if "Max" in items else None
        out.append(FactorValue(species, value, minimum, maximum, items.get("Flag", "N") or "N"))
    return out


def data_time_utc(packet: Packet, zone: ZoneInfo) -> datetime:
    return _data_time(packet, zone)[0]


def _data_time(packet: Packet, zone: ZoneInfo) -> tuple[datetime, str]:
    """DataTime in UTC and as iso_utc's text; Refused when absent, malformed or out of range."""
    text = packet.cp_value("DataTime")
    if text is None:
        raise Refused("no_data_time", f"CN {packet.cn} packet without DataTime in CP")
    return _utc_of(text, zone)


@lru_cache(maxsize=8192)
def _utc_of(text: str, zone: ZoneInfo) -> tuple[datetime, str]:
    """A DataTime text of `zone` in UTC, and as iso_utc's text. Cached: the loggers of a network send
    the same minutes (the zone conversion and the parse were a tenth of the listener's loop time)."""
    try:
        local = parse_data_time(text)
    except PacketError as e:
        raise Refused("bad_data_time", str(e)) from None
    try:
        t = local.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:
        t = MIN_TIME.replace(year=1)
    if not (MIN_TIME < t <= MAX_TIME):
        raise Refused("bad_data_time", f"DataTime {text} is outside {MIN_TIME.year}-{MAX_TIME.year}")
    return t, iso_utc(t)


def _flag_and_reasons(values: list[FactorValue]) -> tuple[str, list[str]]:
    """One ICOS letter for the record: U when every factor is N, else N with the reasons of the others."""
    reasons: list[str] = []
    for v in values:
        letter, rs = codes.icos_flag(v.flag)
        if letter != "U":
            reasons += [r for r in rs if r not in reasons]
    return ("N", reasons) if reasons else ("U", [])


def minute_batch(packet: Packet, logger: LoggerConfig, zone: ZoneInfo, received_at: datetime) -> ParsedBatch:
    t, t_text = _data_time(packet, zone)
    if t.second or t.microsecond:
        raise Refused("bad_data_time", f"minute DataTime {packet.cp_value('DataTime')} is not the start of a minute")
    values = factor_values(packet, logger)
    gases = [v for v in values if v.species != "h2o"]
    if not gases:
        raise Refused("no_known_factors", f"no configured factor ({', '.join(logger.factors)}) in the packet")
    flag, reasons = _flag_and_reasons(values)
    h2o = next((v.value for v in values if v.species == "h2o"), None)
    diagnostics: dict[str, float] = {}
    for v in gases:
        if v.minimum is not None:
            diagnostics[f"{v.species}_min"] = v.minimum
        if v.maximum is not None:
            diagnostics[f"{v.species}_max"] = v.maximum
    device = logger.device if packet.pno is None else f"{logger.device}-p{packet.pno}"
    # The lean decoder's record type (central/lean_minutes.py: the same fields and values as
    # MinuteWire, without pydantic's cost, a third of central's CPU per packet). Every field is
    # checked here or comes from the validated config: finite floats, a time in the wire's range, seq >= 1.
    record = MinuteLean(
        seq=period_seq(t, packet.cn), time=t, device=device, stream=logger.stream,
        species={v.species: SpeciesLean(mean=v.value, std=None, n=1 if v.value is not None else 0,
                                        raw_mean=None, cal_mean=v.value) for v in gases},
        h2o=h2o, flag=flag, reasons=reasons, n_total=1, calibration_id=None, diagnostics=diagnostics,
    )
    # time_texts: the store keeps the text as it is (and refuse_future_records compares texts)
    return ParsedBatch(logger.station, "minute", received_at, [record], time_texts=[t_text],
                       store=logger_store(packet.mn, packet.cn, packet.pno))


def event_batch(packet: Packet, logger: LoggerConfig, zone: ZoneInfo, received_at: datetime) -> ParsedBatch:
    t = data_time_utc(packet, zone)
    values = factor_values(packet, logger)
    kind = EVENT_KINDS[packet.cn]
    data = {
        "mn": packet.mn, "cn": packet.cn, "qn": packet.qn, "data_time": iso_utc(t),
        "values": {v.species: {"value": v.value, "min": v.minimum, "max": v.maximum, "flag": v.flag}
                   for v in values},
        "cp": [dict(g) for g in packet.cp],
    }
    record = EventWire(seq=period_seq(t, packet.cn), time=t, kind=kind, severity="info",
                       message=f"HJ 212 {codes.CN_NAMES[packet.cn]} from MN {packet.mn}",
                       device=logger.device, data=data)
    return ParsedBatch(logger.station, "event", received_at, [record], store=logger_store(packet.mn, packet.cn,
                                                                                             packet.pno))


def packet_batch(packet: Packet, logger: LoggerConfig, zone: ZoneInfo, received_at: datetime) -> ParsedBatch:
    """The batch to store for a data packet (CN 2011/2051/2061/2031); Refused when it cannot be one."""
    if packet.cn == codes.CN_MINUTE:
        return minute_batch(packet, logger, zone, received_at)
    if packet.cn in EVENT_KINDS:
        return event_batch(packet, logger, zone, received_at)
    raise Refused("not_data", f"CN {packet.cn} is not a data upload")
