"""A simulated LI-COR LI-7810 / LI-7815 / LI-7820 that serves itself: its own MQTT broker.

As the analyzer does (drivers/licor/li78xx.py, which also holds the payload details no public
source fixes), it runs a mosquitto broker (a real process, simulators/broker.py; a fixed `port`
or a free one) and publishes one record a `record_interval_s` of simulated time on
`licor/niobrara/output/concentration`, diagnostics every `diagnostics_every_s` on
`.../diagnostics`, and the units of both (retained) on their `/units` topics. Records are made
from the bench's gas and the injected clock, caught up by a publisher thread; with `data_dir` set
it also writes the analyzer's `.data` files (one per UTC day, CHK on every row).

Every record is kept in a ledger with its fate (published, silenced, garbled, broker down) and its
true cell values, so a test can count both sides of the link.

Faults (`inject`, also through the bench control port), each for `count` records and/or
`duration_s` simulated seconds:
    garbage      a payload that is not a record is published in place of the record
    silent       nothing is published (the records are still made and written to file)
    bad_diag     records carry a DIAG word with bits set (`word`, default BAD_DIAG_WORD)
    broker_down  the broker process is killed; it restarts on the same port when the fault ends
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from pydantic import Field

from drivers.base import TimeZoneName
from drivers.licor.datafile import data_row
from drivers.licor.li78xx import CONCENTRATION, DEFAULT_WIRE_UNITS, DIAGNOSTICS, TOPIC_ROOT, WRAPPERS
from ghgnet.clock import Clock
from ghgnet.config import RelPath
from simulators.bench import DiurnalGas
from simulators.broker import MosquittoBroker
from simulators.config import AnalyzerResponseConfig, DiurnalGasConfig, InstrumentConfig, NoiseConfig
from simulators.faults import FaultSet
from simulators.gas import analyzer_reading
from simulators.picarro.g2401 import LedgerEntry

GasFn = Callable[[datetime], dict[str, float]]

MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "licor.li7810": ("LI-7810", ("CO2", "CH4")),
    "licor.li7815": ("LI-7815", ("CO2",)),
    "licor.li7820": ("LI-7820", ("N2O",)),
}
"""driver name -> (model as in the file header, species columns)."""

FAULTS = ("garbage", "silent", "bad_diag", "broker_down")
BAD_DIAG_WORD = 1 << 3
DIAG_COLUMNS = ("CAVITY_P", "CAVITY_T", "THERMAL_ENCLOSURE_T", "INPUT_VOLTAGE")
SOFTWARE_VERSION = "2.3.3"


class LicorInstrument(InstrumentConfig):
    """One simulated LI-78xx with its own broker (`host`, `port`: 0 = any free port)."""

    model: Literal["licor.li7810", "licor.li7815", "licor.li7820"] = Field(
        description="driver name the station uses for it")
    serial: str = Field(default="TG10-00001", description="serial number in the file header")
    record_interval_s: float = Field(default=1.0, gt=0, description="seconds between records")
    diagnostics_every_s: float = Field(default=10.0, gt=0, description="seconds between diagnostics messages")
    timezone: TimeZoneName = Field(default="UTC", description="the analyzer's zone: DATE/TIME columns and file header")
    data_dir: RelPath | None = Field(default=None, description="write the analyzer's .data files here")
    noise: NoiseConfig = Field(default_factory=lambda: NoiseConfig(co2=0.1, ch4=0.6, n2o=0.3, h2o=0.002))
    response: AnalyzerResponseConfig = Field(default_factory=AnalyzerResponseConfig)
    gas: DiurnalGasConfig = Field(
        default_factory=DiurnalGasConfig,
        description="the gas it measures when the bench has no valve (with a valve: the [gas] section)",
    )


@dataclass
class _DataFile:
    day: str
    path: Path


@dataclass
class LicorSimulator:
    """The analyzer; `start()` starts its broker and publisher, `url` is where the driver goes."""

    clock: Clock
    config: LicorInstrument
    gas: GasFn
    drift_epoch: datetime | None = None
    _ledger: list[LedgerEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model, self.species = MODELS[self.config.model]
        self.faults = FaultSet(FAULTS, self.clock.monotonic, lasting=("broker_down",))
        self._zone = ZoneInfo(self.config.timezone)
        self._rng = random.Random(self.config.seed)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._broker: MosquittoBroker | None = None
        self._client: mqtt.Client | None = None
        self._tmp: Path | None = None
        self._epoch = self.drift_epoch or self.clock.now()
        start = self.clock.now()
        self._next = start.replace(microsecond=0) + timedelta(seconds=1)
        self._next_diag = self._next
        self._ndx = 0
        self._file: _DataFile | None = None
        self.broker_restarts = 0

    # ------------------------------------------------------------------ serving

    @property
    def url(self) -> str:
        port = self._broker.port if self._broker is not None else self.config.port
        return f"mqtt://{self.config.host}:{port}"

    @property
    def broker(self) -> MosquittoBroker | None:
        return self._broker

    def start(self) -> "LicorSimulator":
        self._tmp = Path(tempfile.mkdtemp(prefix=f"licor-{self.config.id}-"))
        self._broker = MosquittoBroker(self._tmp / "broker", host=self.config.host,
                                       port=self.config.port or None).start()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"analyzer-{self.config.id}",
                             protocol=mqtt.MQTTv311)
        client.reconnect_delay_set(0.05, 0.5)
        client.on_connect = lambda *_: self._publish_units()  # retained units again after a broker restart
        self._client = client
        client.connect(self.config.host, self._broker.port, keepalive=30)
        client.loop_start()
        deadline = time.monotonic() + 10.0
        while not client.is_connected():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.config.id}: cannot connect to its own broker at {self.url}")
            time.sleep(0.01)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"licor-{self.config.id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        if self._broker is not None:
            self._broker.kill()
            self._broker = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _publish_units(self) -> None:
        for kind, columns in ((CONCENTRATION, self._record_columns()), (DIAGNOSTICS, DIAG_COLUMNS)):
            units = {c: DEFAULT_WIRE_UNITS[c] for c in columns if c in DEFAULT_WIRE_UNITS}
            self._publish(f"{TOPIC_ROOT}/{kind}/units", {WRAPPERS[kind]: units}, retain=True)

    def _publish(self, topic: str, doc: Any, retain: bool = False) -> bool:
        payload = doc if isinstance(doc, bytes) else json.dumps(doc, separators=(",", ":")).encode()
        client = self._client
        if client is None or not client.is_connected():
            return False
        return client.publish(topic, payload, qos=0, retain=retain).rc == mqtt.MQTT_ERR_SUCCESS

    def _run(self) -> None:
        real = getattr(self.clock, "real_seconds", None)
        # records are caught up in batches: at high speed one wake-up per record would cost more
        # than the records
        pause = min(0.05, max(0.01, real(self.config.record_interval_s))) if real else 0.01
        while not self._stop.is_set():
            self.publish_due()
            self._stop.wait(pause)

    # ------------------------------------------------------------------ records

    def _record_columns(self) -> tuple[str, ...]:
        return ("H2O", *self.species, "CAVITY_P", "CAVITY_T", "LASER_PHASE_P", "LASER_T", "RESIDUAL",
                "RING_DOWN_TIME", "THERMAL_ENCLOSURE_T", "PHASE_ERROR", "LASER_T_SHIFT", "INPUT_VOLTAGE")

    def response(self, species: str, true_value: float, t: datetime) -> float:
        """The analyzer's noise-free reading of a true dry value (gain, offset, drift)."""
        days = (t - self._epoch).total_seconds() / 86400.0
        return analyzer_reading(self.config.response, species, true_value, days)

    def publish_due(self) -> int:
        """Make (and publish, and write) every record due by now; returns how many were made."""
        made = 0
        now = self.clock.now()
        while True:
            with self._lock:  # one record at a time: the control port's requests get their turn
                if self._next > now:
                    return made
                self._restart_broker_if_due(self._mono_at(self._next))
                self._produce(self._next)
                if self._next >= self._next_diag:
                    self._publish_diagnostics(self._next)
                    self._next_diag = self._next + timedelta(seconds=self.config.diagnostics_every_s)
                self._next += timedelta(seconds=self.config.record_interval_s)
                made += 1

    def _values(self, t: datetime, truth: dict[str, float], diag: int) -> dict[str, Any]:
        noise = self.config.noise
        gauss = self._rng.gauss
        values: dict[str, Any] = {
            "H2O": round(max(0.0, truth.get("h2o", 0.0) + gauss(0.0, noise.h2o)) * 1e4, 3)}
        for col in self.species:
            sp = col.lower()
            values[col] = round(self.response(sp, truth.get(sp, 0.0), t) + gauss(0.0, getattr(noise, sp)), 5)
        values |= {
            "CAVITY_P": round(39.83 + gauss(0.0, 0.0005), 4), "CAVITY_T": round(55.0 + gauss(0.0, 0.0002), 4),
            "LASER_PHASE_P": round(31.61 + gauss(0.0, 0.001), 4), "LASER_T": 34.8853,
            "RESIDUAL": round(0.00218 + gauss(0.0, 0.00001), 8), "RING_DOWN_TIME": round(38.45 + gauss(0.0, 0.001), 4),
            "THERMAL_ENCLOSURE_T": 54.4998, "PHASE_ERROR": round(gauss(0.0, 20.0), 1), "LASER_T_SHIFT": -0.10586,
            "INPUT_VOLTAGE": round(14.27 + gauss(0.0, 0.001), 4),
        }
        return values

    def _mono_at(self, t: datetime) -> float:
        """The clock's monotonic reading at `t`: faults are judged at a record's own time (records
        are made in batches, after the fact)."""
        return self.clock.monotonic() - (self.clock.now() - t).total_seconds()

    def _produce(self, t: datetime) -> None:
        mono = self._mono_at(t)
        truth = dict(self.gas(t))
        diag = int(self.faults.param("bad_diag", "word", BAD_DIAG_WORD)) \
            if self.faults.active("bad_diag", mono, consume=True) else 0
        values = self._values(t, truth, diag)
        self._ndx += 1
        stamp = int(t.timestamp())
        nanos = t.microsecond * 1000
        record = {"SECONDS": stamp, "NANOSECONDS": nanos, "NDX": self._ndx, "DIAG": diag, "REMARK": "", **values}
        row = self._file_row(t, record)
        record["CHK"] = int(row.rsplit("\t", 1)[1])
        if self.faults.active("broker_down", mono) or self._broker is None or not self._broker.running:
            fate = "broker_down"
        elif self.faults.active("silent", mono, consume=True):
            fate = "silenced"
        elif self.faults.active("garbage", mono, consume=True):
            noise = bytes(self._rng.choice(b"{}[]:,\"abcXYZ0123456789\xfe\x00") for _ in range(self._rng.randint(3, 40)))
            self._publish(f"{TOPIC_ROOT}/{CONCENTRATION}", noise)
            fate = "garbled"
        else:
            sent = self._publish(f"{TOPIC_ROOT}/{CONCENTRATION}", {WRAPPERS[CONCENTRATION]: record})
            fate = "published" if sent else "unsent"
        self._ledger.append(LedgerEntry(len(self._ledger), t, dict(values),
                                        connected=fate == "published", fate=fate, truth=truth))
        self._write(t, row)

    def _publish_diagnostics(self, t: datetime) -> None:
        last = self._ledger[-1] if self._ledger else None
        if last is None or last.fate != "published":
            return
        doc = {"SECONDS": int(t.timestamp()), "NANOSECONDS": t.microsecond * 1000,
               "DIAG": 0, **{c: last.values[c] for c in DIAG_COLUMNS}}
        self._publish(f"{TOPIC_ROOT}/{DIAGNOSTICS}", {WRAPPERS[DIAGNOSTICS]: doc})

    # ------------------------------------------------------------------ .data files

    def _file_row(self, t: datetime, record: dict[str, Any]) -> str:
        local = t.astimezone(self._zone)
        texts = [str(record["SECONDS"]), str(record["NANOSECONDS"]), str(record["NDX"]), str(record["DIAG"]),
                 '""', local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S"),
                 *(f"{record[c]:.8g}" for c in self._record_columns())]
        return data_row(texts)

    def _header(self, t: datetime) -> str:
        cols = ["SECONDS", "NANOSECONDS", "NDX", "DIAG", "REMARK", "DATE", "TIME", *self._record_columns(), "CHK"]
        units = ["secs", "nsecs", "index", "diag", "", "date", "time",
                 *(DEFAULT_WIRE_UNITS[c] for c in self._record_columns()), "CHK"]
        local = t.astimezone(self._zone)
        return (f"Model:\t{self.model}\nSN:\t{self.config.serial}\nSoftware Version:\t{SOFTWARE_VERSION}\n"
                f"Timestamp:\t{local:%Y-%m-%d %H:%M:%S}\nTimezone:\t{self.config.timezone}\n"
                "DATAH\t" + "\t".join(cols) + "\nDATAU\t" + "\t".join(units) + "\n")

    def _write(self, t: datetime, row: str) -> None:
        if self.config.data_dir is None:
            return
        day = t.astimezone(UTC).strftime("%Y-%m-%d")
        if self._file is None or self._file.day != day:
            folder = Path(self.config.data_dir)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self.config.serial}-{day}.data"
            if not path.exists():
                path.write_bytes(self._header(t).encode("utf-8"))
            self._file = _DataFile(day, path)
        with self._file.path.open("ab") as fh:
            fh.write(row.encode("utf-8") + b"\n")

    @property
    def data_files(self) -> list[Path]:
        folder = self.config.data_dir
        return sorted(Path(folder).glob("*.data")) if folder is not None and Path(folder).is_dir() else []

    # ------------------------------------------------------------------ faults

    def inject(self, fault: str, count: int | None = None, duration_s: float | None = None, **params: Any) -> None:
        """Start a fault for `count` records and/or `duration_s` simulated seconds (see the module
        docstring); with neither, for one record (broker_down: until clear_faults)."""
        with self._lock:
            self.publish_due()
            self.faults.inject(fault, count, duration_s, **params)
            if fault == "broker_down" and self._broker is not None and self._broker.running:
                self._broker.kill()

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self._restart_broker_if_due(self.clock.monotonic())

    def _restart_broker_if_due(self, mono: float) -> None:
        broker = self._broker
        if broker is None or broker.running or self.faults.active("broker_down", mono):
            return
        broker.start()
        self.broker_restarts += 1

    # ------------------------------------------------------------------ what tests count

    @property
    def ledger(self) -> list[LedgerEntry]:
        with self._lock:
            return list(self._ledger)

    def stats(self) -> dict[str, int]:
        with self._lock:
            counts = {"produced": len(self._ledger), "published": 0, "silenced": 0, "garbled": 0,
                      "broker_down": 0, "unsent": 0, "broker_restarts": self.broker_restarts}
            for e in self._ledger:
                counts[e.fate] += 1
            return counts

    def ledger_rows(self, since_seq: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [{"seq": e.seq, "time": e.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                     "values": dict(e.values), "fate": e.fate, "truth": dict(e.truth)}
                    for e in self._ledger[since_seq:]]


class LicorBench:
    """The bench model of the LI-78xx analyzers (entry points licor.li7810, .li7815, .li7820)."""

    kind = "analyzer"
    Config = LicorInstrument

    @staticmethod
    def build(config: LicorInstrument, clock: Clock, gas: GasFn | None = None) -> LicorSimulator:
        return LicorSimulator(clock, config, gas or DiurnalGas.from_config(config.gas))
