"""LI-COR trace gas analyzers LI-7810 (CO2/CH4/H2O), LI-7815 (CO2/H2O) and LI-7820 (N2O/H2O) over
MQTT.

The analyzer runs its own MQTT broker (Eclipse Mosquitto, port 1883) and publishes on
`licor/niobrara/output/concentration` and `licor/niobrara/output/diagnostics`, each with a
`.../units` companion (LI-COR, LI-7810/LI-7815 instruction manuals, section 7 "Communication with
the MQTT protocol", table 7-1). The driver's transport is an `MqttSubscription`: a paho-mqtt client
subscribed to those four topics; what the broker sends waits in its socket and `poll` reads it all
(no thread of its own: one poll moves a whole batch) and translates.
The driver never sleeps, retries or reconnects: a lost broker raises TransportError and the
engine reopens the subscription.

Record fields and units are those of the analyzer's `.data` files (DATAH/DATAU: SECONDS,
NANOSECONDS, NDX, DIAG, REMARK, H2O ppm, CO2 ppm, CH4 ppb, N2O ppb, CAVITY_P kPa, CAVITY_T degC,
...; LI-COR manuals "Working with data", sample files in Qepanna/goFlux inst/extdata/LI7810 and
LI7820). CO2, CH4 and N2O are dry mole fractions (goFlux imports them as CO2dry_ppm/CH4dry_ppb;
`reports_dry = false` reads them as wet). H2O arrives in ppm and becomes % (ghgnet's unit).

What no public source fixes (LI-COR does not publish the JSON payload), all in the "payload"
section below and nowhere else: the message is a JSON object holding one object under a wrapper
key (`Concentration`, `Diagnostics`; as users' scripts read it), keyed by the data-file column
names; a value is a number or a `[value, flag, ...]` array (first element used); the time is
SECONDS + NANOSECONDS (Unix time, UTC); a `/units` message maps the same names to unit strings and,
when it comes, overrides the data-file units; the meaning of the DIAG bits (any set bit not listed
in `diag_ignore_bits` marks the record not ok, named `diag_bit_<n>`).

Diagnostic quantities are named `cell_pressure` (hPa) and `cell_temp` (degC), not
`cavity_pressure`/`cavity_temp`: those names carry the Picarro's Torr and its 140 Torr / 45 C
windows in the station's processing, which a LI-COR cavity (about 40 kPa, 55 C) must not meet.
"""

from __future__ import annotations

import json
import math
import select
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from pydantic import Field, field_validator

from drivers.base import AnalyzerDriver, DeviceConfig, PollResult
from drivers.reading import Reading, unit_of
from drivers.transport import TransportError, TransportTimeout
from drivers.water import water_correction_field

# --------------------------------------------------------------------------- the payload
# Everything about the JSON payload that no public source fixes lives in this section.

TOPIC_ROOT = "licor/niobrara"
CONCENTRATION = "output/concentration"
DIAGNOSTICS = "output/diagnostics"
UNITS = "/units"
WRAPPERS = {CONCENTRATION: "Concentration", DIAGNOSTICS: "Diagnostics"}
"""The key each message's object sits under (a message without it is read as the object itself)."""
TIME_FIELDS = ("SECONDS", "NANOSECONDS")
STATUS_FIELD = "DIAG"
TEXT_FIELDS = ("REMARK", "DATE", "TIME")
NOT_VALUES = frozenset({*TIME_FIELDS, STATUS_FIELD, *TEXT_FIELDS, "NDX", "CHK"})
"""Record fields that are not quantities (index, checksum, times, remarks)."""

FIELDS: dict[str, str] = {
    "H2O": "h2o",
    "CO2": "co2_dry",
    "CH4": "ch4_dry",
    "N2O": "n2o_dry",
    "CAVITY_P": "cell_pressure",
    "CAVITY_T": "cell_temp",
    "LASER_PHASE_P": "laser_phase_pressure",
    "LASER_T": "laser_temp",
    "RESIDUAL": "fit_residual",
    "RING_DOWN_TIME": "ring_down_time",
    "THERMAL_ENCLOSURE_T": "enclosure_temp",
    "PHASE_ERROR": "phase_error",
    "LASER_T_SHIFT": "laser_temp_shift",
    "INPUT_VOLTAGE": "input_voltage",
}
"""Data-file column -> ghgnet quantity (drivers.reading.UNITS); species as dry mole fractions."""
SPECIES_FIELDS = ("CO2", "CH4", "N2O")

DEFAULT_WIRE_UNITS: dict[str, str] = {
    "H2O": "ppm", "CO2": "ppm", "CH4": "ppb", "N2O": "ppb", "CAVITY_P": "kPa", "CAVITY_T": "°C",
    "LASER_PHASE_P": "kPa", "LASER_T": "°C", "RESIDUAL": "", "RING_DOWN_TIME": "µsecs",
    "THERMAL_ENCLOSURE_T": "°C", "PHASE_ERROR": "counts", "LASER_T_SHIFT": "°C", "INPUT_VOLTAGE": "V",
}
"""The DATAU line of the analyzer's data files, used until a `/units` message says otherwise."""

UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("ppm", "ppm"): 1.0, ("ppb", "ppb"): 1.0, ("ppm", "ppb"): 1000.0, ("ppb", "ppm"): 0.001,
    ("ppm", "%"): 1e-4, ("%", "%"): 1.0, ("mmol/mol", "%"): 0.1,
    ("kPa", "kPa"): 1.0, ("kPa", "hPa"): 10.0, ("°C", "degC"): 1.0, ("C", "degC"): 1.0, ("degC", "degC"): 1.0,
    ("µsecs", "us"): 1.0, ("usecs", "us"): 1.0, ("us", "us"): 1.0, ("V", "V"): 1.0,
    ("counts", "1"): 1.0, ("", "1"): 1.0,
}
"""factor[(wire unit, ghgnet unit)]: wire value * factor = ghgnet value."""

MAX_DIAG_BIT = 31


def topics(root: str = TOPIC_ROOT) -> tuple[str, ...]:
    """The four topics the driver subscribes to, in order."""
    return tuple(f"{root}/{t}{suffix}" for t in (CONCENTRATION, DIAGNOSTICS) for suffix in ("", UNITS))


def wire_value(value: Any) -> float | None:
    """A payload value as a float: a number, or the first element of a `[value, flag]` array;
    None for an empty one (the analyzer sends blanks while it warms up). ValueError otherwise."""
    if isinstance(value, list) and value:
        value = value[0]
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def unwrap(payload: bytes, kind: str) -> dict[str, Any]:
    """The object of one message (`kind` is CONCENTRATION or DIAGNOSTICS); ValueError naming why
    it is not one."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"not a JSON object but {type(doc).__name__}")
    inner = doc.get(WRAPPERS[kind], doc)
    if not isinstance(inner, dict):
        raise ValueError(f"{WRAPPERS[kind]!r} holds {type(inner).__name__}, not an object")
    return inner


def record_time(obj: dict[str, Any]) -> datetime:
    """SECONDS + NANOSECONDS (Unix time) as an aware UTC datetime; ValueError when missing."""
    seconds, nanos = obj.get(TIME_FIELDS[0]), obj.get(TIME_FIELDS[1], 0)
    s, ns = wire_value(seconds), wire_value(nanos)
    if s is None:
        raise ValueError(f"no {TIME_FIELDS[0]}")
    return datetime.fromtimestamp(int(s), UTC).replace(microsecond=int((ns or 0) // 1000) % 1_000_000)


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class LicorDiag:
    """The DIAG value of a record. Its bits are not published: any set bit not in `ignored`
    makes the record not ok and is named `diag_bit_<n>`."""

    word: int
    ignored: frozenset[int] = frozenset()

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(f"diag_bit_{b}" for b in range(MAX_DIAG_BIT + 1)
                     if self.word >> b & 1 and b not in self.ignored)

    @property
    def ok(self) -> bool:
        return not self.flags


# --------------------------------------------------------------------------- configuration


class LicorConfig(DeviceConfig):
    """Fields shared by the LI-78xx models; each narrows `driver` and its species."""

    SPECIES: ClassVar[tuple[str, ...]] = ("CO2", "CH4")
    MODEL: ClassVar[str] = "LI-7810"

    url: str = Field(description="the analyzer's broker, mqtt://host:port (port 1883 on the analyzer)")
    poll_interval_s: float = Field(default=5.0, gt=0, description="seconds between drains of the queue")
    topic_root: str = Field(default=TOPIC_ROOT, pattern=r"^[^#+]+$",
                            description="topic prefix the analyzer publishes under")
    client_id: str | None = Field(default=None, max_length=64, description="MQTT client id (default: random)")
    reports_dry: bool = Field(default=True, description="species values are dry mole fractions (LI-COR default)")
    water_correction: dict[str, tuple[float, float]] = water_correction_field(when="used only when reports_dry is false")
    diag_ignore_bits: list[int] = Field(default_factory=list, description="DIAG bits that do not invalidate a record")
    max_per_poll: int = Field(default=20000, ge=10, description="messages read in one poll; the rest wait for the next")

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname or not parts.port:
            raise ValueError(f"{url!r}: expected mqtt://host:port (the analyzer's broker)")
        return url

    @field_validator("diag_ignore_bits")
    @classmethod
    def _bits(cls, bits: list[int]) -> list[int]:
        bad = [b for b in bits if not 0 <= b <= MAX_DIAG_BIT]
        if bad:
            raise ValueError(f"DIAG bits are 0..{MAX_DIAG_BIT}, got {bad}")
        return bits

    def quantity(self, field: str) -> str | None:
        """The ghgnet quantity of a record field, or None for a field this model does not report."""
        if field in SPECIES_FIELDS and field not in self.SPECIES:
            return None
        name = FIELDS.get(field)
        if name is not None and field in SPECIES_FIELDS and not self.reports_dry:
            return name.removesuffix("_dry")
        return name


class LI7810Config(LicorConfig):
    """A LI-COR LI-7810 (CO2/CH4/H2O): `[[analyzers]]` entry with driver = "licor.li7810"."""

    driver: Literal["licor.li7810"] = "licor.li7810"


class LI7815Config(LicorConfig):
    """A LI-COR LI-7815 (CO2/H2O): `[[analyzers]]` entry with driver = "licor.li7815"."""

    SPECIES: ClassVar[tuple[str, ...]] = ("CO2",)
    MODEL: ClassVar[str] = "LI-7815"
    driver: Literal["licor.li7815"] = "licor.li7815"


class LI7820Config(LicorConfig):
    """A LI-COR LI-7820 (N2O/H2O): `[[analyzers]]` entry with driver = "licor.li7820"."""

    SPECIES: ClassVar[tuple[str, ...]] = ("N2O",)
    MODEL: ClassVar[str] = "LI-7820"
    driver: Literal["licor.li7820"] = "licor.li7820"


# --------------------------------------------------------------------------- the subscription


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes


class MqttSubscription:
    """The driver's transport: a paho-mqtt client on the analyzer's broker, subscribed to
    `topics`. It runs no thread of its own: what the broker sends waits in the socket, and
    `drain()` reads it (at most `max_per_poll` packets; the rest stay for the next drain), so one
    poll moves a whole batch without a thread hand-over per message.

    `open()` connects and waits for the broker's CONNACK within `timeout_s`; a broker that goes
    away marks the link `lost` (paho is not left to reconnect on its own: the engine reopens).
    """

    def __init__(self, url: str, topics: tuple[str, ...], *, timeout_s: float = 2.0,
                 client_id: str | None = None, max_per_poll: int = 20000) -> None:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"{url!r}: expected mqtt://host:port")
        self.url = url
        self.topics = topics
        self.timeout_s = timeout_s
        self.max_per_poll = max_per_poll
        self._address = (parts.hostname, parts.port)
        self._client_id = client_id or f"ghgnet-{uuid.uuid4().hex[:12]}"
        self._queue: list[Message] = []
        self._client: mqtt.Client | None = None
        self._connected = False
        self._refused: str | None = None
        self.lost: str | None = None
        self.subscribed: list[str] = []

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def open(self) -> None:
        self.close()
        self._connected, self._refused, self.lost = False, None, None
        self.subscribed = []
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self._client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        try:
            client.connect(*self._address, keepalive=max(10, int(self.timeout_s * 10)))
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot open {self.url}: {exc}") from exc
        deadline = time.monotonic() + self.timeout_s
        while not (self._connected or self._refused or self.lost) and time.monotonic() < deadline:
            client.loop(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
        if not self._connected:
            client.disconnect()
            if self._refused or self.lost:
                raise TransportError(f"{self.url}: connection refused ({self._refused or self.lost})")
            raise TransportTimeout(f"{self.url}: no CONNACK within {self.timeout_s} s")
        client.loop_write()  # the SUBSCRIBE queued by on_connect
        self._client = client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            return
        client.subscribe([(t, 1) for t in self.topics])
        self.subscribed = list(self.topics)
        self._connected = True

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.lost = f"broker {self.url} went away ({reason})"

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.append(Message(msg.topic, bytes(msg.payload)))

    def _pump(self, limit: int) -> None:
        """Read what the socket holds (at most `limit` packets), then answer pings."""
        client = self._client
        if client is None or self.lost:
            return
        for _ in range(limit):
            sock = client.socket()
            if sock is None or not select.select([sock], [], [], 0)[0]:
                break
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                break
        if client.socket() is not None:
            client.loop_write()
            client.loop_misc()

    def fetch(self) -> int:
        """Read what arrived (up to `max_per_poll` packets) without handing it over; how many
        messages now wait."""
        self._pump(self.max_per_poll)
        return len(self._queue)

    def drain(self) -> list[Message]:
        """Every message that arrived since the last drain (up to `max_per_poll`), in order."""
        self.fetch()
        out, self._queue = self._queue, []
        return out

    def wait_for(self, topic: str, timeout_s: float) -> Message | None:
        """The first message on `topic` (taken from the queue), waiting at most `timeout_s` for
        it, as a reply is awaited on a serial line; None when none came."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._pump(self.max_per_poll)
            for m in self._queue:
                if m.topic == topic:
                    self._queue.remove(m)
                    return m
            left = deadline - time.monotonic()
            if left <= 0 or self.lost or self._client is None:
                return None
            sock = self._client.socket()
            if sock is not None:
                select.select([sock], [], [], min(left, 0.05))


# --------------------------------------------------------------------------- the driver


@dataclass(frozen=True)
class _Column:
    quantity: str
    factor: float


class LI7810(AnalyzerDriver):
    """LI-COR LI-7810: CO2, CH4 and H2O by OF-CEAS, read from its own MQTT broker."""

    name = "licor.li7810"
    Config = LI7810Config
    simulator = "simulators.licor.li78xx:LicorSimulator"

    config: LicorConfig
    max_record_age_s: ClassVar[float] = float("inf")
    """Records are pushed: they reach a poll after a delivery delay nobody bounds, so the agent
    must not read the analyzer's clock offset from their age; the analyzer's clock (NTP) is
    trusted instead."""

    def __init__(self, config: DeviceConfig, transport: Any) -> None:
        super().__init__(config, transport)
        self.topics = topics(config.topic_root)
        self._kind = {self.topics[0]: CONCENTRATION, self.topics[2]: DIAGNOSTICS}
        self._units = {self.topics[1]: CONCENTRATION, self.topics[3]: DIAGNOSTICS}
        self.wire_units: dict[str, dict[str, str]] = {CONCENTRATION: dict(DEFAULT_WIRE_UNITS),
                                                      DIAGNOSTICS: dict(DEFAULT_WIRE_UNITS)}
        self._columns: dict[str, dict[str, _Column | str]] = {}
        self._ignored = frozenset(config.diag_ignore_bits)
        self.latest_diagnostics: dict[str, Any] = {}
        for kind in (CONCENTRATION, DIAGNOSTICS):
            self._columns[kind] = self._plan(kind)

    @classmethod
    def make_transport(cls, config: DeviceConfig) -> MqttSubscription:
        assert isinstance(config, LicorConfig)
        return MqttSubscription(config.url, topics(config.topic_root), timeout_s=config.timeout_s,
                                client_id=config.client_id, max_per_poll=config.max_per_poll)

    def _plan(self, kind: str) -> dict[str, _Column | str]:
        """Field -> how to convert it, or the reason it cannot be (an unknown unit)."""
        plan: dict[str, _Column | str] = {}
        for field, unit in self.wire_units[kind].items():
            quantity = self.config.quantity(field)
            if quantity is None:
                continue
            factor = UNIT_FACTORS.get((unit, unit_of(quantity)))
            plan[field] = _Column(quantity, factor) if factor is not None else \
                f"{field}: cannot convert {unit!r} to {unit_of(quantity)}"
        return plan

    # ---- translation

    def _learn_units(self, kind: str, payload: bytes, problems: list[str]) -> None:
        try:
            units = unwrap(payload, kind)
            if not all(isinstance(u, str) for u in units.values()):
                raise ValueError("unit names must be strings")
        except ValueError as why:
            problems.append(f"{kind}{UNITS}: malformed units message skipped ({why}): {payload[:200]!r}")
            return
        self.wire_units[kind].update(units)
        self._columns[kind] = self._plan(kind)

    def _values(self, kind: str, obj: dict[str, Any], problems: list[str]) -> dict[str, float]:
        values: dict[str, float] = {}
        for field, raw in obj.items():
            if field in NOT_VALUES:
                continue
            col = self._columns[kind].get(field)
            if col is None:
                continue  # a field this model does not report, or one ghgnet has no name for
            if isinstance(col, str):
                problems.append(col)
                continue
            try:
                value = wire_value(raw)
            except ValueError as why:
                raise ValueError(f"{field}: {why}") from None
            if value is None or not math.isfinite(value):
                problems.append(f"{field}: no value ({raw!r}) at {obj.get(TIME_FIELDS[0])}")
                continue
            values[col.quantity] = round(value * col.factor, 9)
        return values

    def _reading(self, payload: bytes, problems: list[str]) -> Reading:
        obj = unwrap(payload, CONCENTRATION)
        time = record_time(obj)
        diag = obj.get(STATUS_FIELD)
        word = wire_value(diag) if diag is not None else None
        status = LicorDiag(int(word), self._ignored) if word is not None else None
        values = self._values(CONCENTRATION, obj, problems)
        if not any(self.config.quantity(sp) in values for sp in self.config.SPECIES):
            raise ValueError(f"no {'/'.join(self.config.SPECIES)} value")
        return Reading(time=time, device=self.device_id, values=values,
                       status=status.word if status else None, status_ok=status.ok if status else True,
                       status_flags=status.flags if status else ())

    def _diagnostics(self, payload: bytes, problems: list[str]) -> None:
        obj = unwrap(payload, DIAGNOSTICS)
        out: dict[str, Any] = {"time": record_time(obj).isoformat().replace("+00:00", "Z")}
        if STATUS_FIELD in obj:
            word = wire_value(obj[STATUS_FIELD])
            if word is not None:
                diag = LicorDiag(int(word), self._ignored)
                out |= {"diag": diag.word, "diag_ok": diag.ok, "diag_flags": list(diag.flags)}
        out |= self._values(DIAGNOSTICS, obj, problems)
        self.latest_diagnostics = out

    def poll(self) -> PollResult:
        """Every record published since the last poll, oldest first; diagnostics and units
        messages update what the driver knows. A malformed message is named in `problems`."""
        result = PollResult()
        messages = self.transport.drain()
        if not messages and self.transport.lost:
            raise TransportError(self.transport.lost)
        for m in messages:
            if m.topic in self._units:
                self._learn_units(self._units[m.topic], m.payload, result.problems)
                continue
            kind = self._kind.get(m.topic)
            try:
                if kind == CONCENTRATION:
                    result.readings.append(self._reading(m.payload, result.problems))
                elif kind == DIAGNOSTICS:
                    self._diagnostics(m.payload, result.problems)
                else:
                    result.problems.append(f"message on unexpected topic {m.topic!r} skipped")
            except ValueError as why:
                result.problems.append(f"{m.topic}: malformed message skipped ({why}): {m.payload[:200]!r}")
        if self.transport.lost and messages:
            result.problems.append(self.transport.lost)
        result.readings.sort(key=lambda r: r.time)
        return result

    def identify(self) -> dict[str, Any]:
        """What `probe` shows: the broker, the topics, and the first record and diagnostics that
        arrive within the timeout (without taking the agent's data: a broker serves every
        subscriber)."""
        info = super().identify()
        info.update(model=self.config.MODEL, topics=list(self.topics))
        problems: list[str] = []
        got = self.transport.wait_for(self.topics[0], self.config.timeout_s)
        if got is None:
            raise TransportTimeout(f"{self.topics[0]}: no record within {self.config.timeout_s} s")
        for topic in (self.topics[1], self.topics[3]):
            units = self.transport.wait_for(topic, 0.0)
            if units is not None:
                self._learn_units(self._units[topic], units.payload, problems)
        r = self._reading(got.payload, problems)
        info["latest"] = {"time": r.time.isoformat().replace("+00:00", "Z"), **r.values}
        info.update(status=r.status, status_ok=r.status_ok, status_flags=list(r.status_flags))
        diag = self.transport.wait_for(self.topics[2], 0.0)
        if diag is not None:
            self._diagnostics(diag.payload, problems)
            info["diagnostics"] = self.latest_diagnostics
        info["units"] = dict(self.wire_units[CONCENTRATION])
        if problems:
            info["problems"] = problems
        return info


class LI7815(LI7810):
    """LI-COR LI-7815: CO2 and H2O, same MQTT interface as the LI-7810."""

    name = "licor.li7815"
    Config = LI7815Config


class LI7820(LI7810):
    """LI-COR LI-7820: N2O and H2O, same MQTT interface as the LI-7810."""

    name = "licor.li7820"
    Config = LI7820Config
