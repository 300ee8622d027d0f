"""A simulated ABB / LGR GGA, UGGA or MGGA: its RS-232 record stream, served on TCP and a pty.

The analyzer makes one record every `record_interval_s` of simulated time (lazily, from the
injected clock) from the gas in its cell, and writes it, in the columns of its firmware's layout
(drivers/lgr/columns.py: "2014" or "2019"), to whoever is connected: a record made while nobody
listens is lost, as on a serial line. A new connection first gets the identity line and the header
line (`header_on_connect`; whether the real analyzer repeats its header on the serial port is not
public, see drivers/lgr/ugga.py). Formats follow the public files: fixed-width right-aligned
fields, `%e` values (6 decimals in the 2014 layout, 5 with one-digit exponents in 2019), CR LF.

Values: dry CO2 (ppm) and CH4 (ppb) are the analyzer's response (gain, offset, drift) to the true
dry values plus seeded noise; H2O is the true value plus noise; the wet values are the dry ones
diluted by the water, wet = dry * (1 - H2O/100) (a simulator choice; LGR's own correction is not
public). Every record goes into a ledger with its truth and its fate: delivered (written to a
client, with the values as written), lost (nobody connected), silenced (a `silent` fault).

Faults (`inject(fault, count, duration_s, **params)`, through the bench control port):
    garbage    `count` lines of noise in the stream (default 1)
    fit_flag   records carry Fit_Flag `value` (default 2) for `count` records / `duration_s`
    silent     records are made but not written, for `count` records / `duration_s`
    firmware   from now on the `layout` ("2014"/"2019") or explicit `columns`; the new identity
               and header lines go out at once (stays until the next firmware fault)
    disconnect every TCP client is dropped (it reconnects and gets the header again)
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from drivers.base import TimeZoneName
from drivers.lgr.columns import DATE_ORDERS, DEFAULT_DATE_ORDER, LAYOUTS, Layout, format_time
from ghgnet.clock import Clock
from simulators.bench import DiurnalGas
from simulators.config import AnalyzerResponseConfig, DiurnalGasConfig, InstrumentConfig, NoiseConfig
from simulators.faults import FaultSet
from simulators.gas import analyzer_reading
from simulators.lgr.stream import StreamPty, StreamTcpServer
from simulators.picarro.g2401 import GasFn, LedgerEntry
from simulators.serve import Disconnect

FAULTS = ("garbage", "fit_flag", "silent", "firmware", "disconnect")
MODEL_LAYOUT = {"lgr.gga": "2014", "lgr.mgga": "2014", "lgr.ugga": "2019"}
IDENTITY = {"2014": "VC:2f90039 BD:Jan 16 2014 SN:LGR-SIM-0001",
            "2019": "SN:3K43SIM00001 BD:May 20 2019 VC:1ab9a44 MD5:00000000000000000000000000000000"}
SYSTIME_LAG_S = 0.2
"""SysTime runs this far behind Time in the 2019 layout (as in the public UGGA file)."""
PAUSE_S = (0.002, 0.05)
"""Real seconds between two looks at the clock by a streaming thread (least, most)."""


class LgrInstrument(InstrumentConfig):
    """One simulated LGR analyzer (`[[instruments]]` with model = "lgr.gga" | "lgr.ugga" |
    "lgr.mgga"); served on `port` (TCP) and, with `pty_link`, on a pty: its `url` is the pty's."""

    model: Literal["lgr.gga", "lgr.ugga", "lgr.mgga"] = Field(description="driver name the station uses")
    layout: Literal["2014", "2019"] | None = Field(default=None, description="firmware layout; default: the model's")
    date_order: Literal["mdy", "dmy", "ymd"] = Field(default=DEFAULT_DATE_ORDER, description=str(DATE_ORDERS))
    timezone: TimeZoneName = Field(default="UTC", description="zone of the simulated analyzer clock")
    record_interval_s: float = Field(default=1.0, gt=0, description="seconds between records")
    header_on_connect: bool = True
    cell_pressure_torr: float = 140.0
    cell_temp_c: float = 35.0
    ambient_temp_c: float = 30.0
    noise: NoiseConfig = Field(default_factory=lambda: NoiseConfig(co2=0.3, ch4=1.5, h2o=0.002))
    response: AnalyzerResponseConfig = Field(default_factory=AnalyzerResponseConfig)
    gas: DiurnalGasConfig = Field(
        default_factory=DiurnalGasConfig,
        description="the gas it measures when the bench has no valve (with a valve: the [gas] section)",
    )


def _e5(v: float) -> str:
    """`2.00310e+0`: the 2019 firmware's 5-decimal mantissa and exponent without leading zeros."""
    mantissa, exponent = f"{v:.5e}".split("e")
    return f"{mantissa}e{exponent[0]}{int(exponent[1:])}"


class LgrSimulator:
    """An LGR analyzer's RS-232 stream (simulators.lgr.stream), with faults, ledger and stats."""

    def __init__(self, clock: Clock, config: LgrInstrument, gas: GasFn | None = None) -> None:
        self.clock = clock
        self.config = config
        self.gas: GasFn = gas or DiurnalGas.from_config(config.gas)
        self._zone = ZoneInfo(config.timezone)
        self._rng = random.Random(config.seed)
        self._noise = random.Random(config.seed + 1)
        self._lock = threading.RLock()
        self._epoch = clock.now()
        self._next_time = clock.now() + timedelta(seconds=config.record_interval_s)
        self._next_mono = clock.monotonic() + config.record_interval_s
        self.layout_name = config.layout or MODEL_LAYOUT[config.model]
        self.columns: tuple[str, ...] = LAYOUTS[self.layout_name]
        self._ledger: list[LedgerEntry] = []
        self.faults = FaultSet(FAULTS, clock.monotonic)
        self._queues: dict[int, bytearray] = {}
        self._dropping: set[int] = set()
        self._next_client = 0
        self.connections = 0
        self.garbage_lines = 0
        self._servers: list[Any] = []

    # ------------------------------------------------------------------ serving itself

    def start(self) -> LgrSimulator:
        c = self.config
        self._servers = [StreamTcpServer(self, c.host, c.port).start()]
        if c.pty_link is not None:
            self._servers.append(StreamPty(self, c.pty_link).start())
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers = []

    @property
    def url(self) -> str:
        """The pty's path when it has one, else the TCP URL (port 0 until started: any free one)."""
        if self._servers:
            return self._servers[-1].url
        c = self.config
        return str(c.pty_link) if c.pty_link is not None else f"socket://{c.host}:{c.port}"

    @property
    def tcp_url(self) -> str:
        return self._servers[0].url

    # ------------------------------------------------------------------ the stream

    def attach(self) -> int:
        with self._lock:
            self._advance()
            cid = self._next_client
            self._next_client += 1
            self.connections += 1
            self._queues[cid] = bytearray(self._header() if self.config.header_on_connect else b"")
            return cid

    def detach(self, client: int) -> None:
        with self._lock:
            self._advance()
            self._queues.pop(client, None)
            self._dropping.discard(client)

    def take(self, client: int) -> bytes:
        with self._lock:
            self._advance()
            if client in self._dropping:
                self._dropping.discard(client)
                raise Disconnect()
            queue = self._queues.get(client)
            if queue is None:
                return b""
            data = bytes(queue)
            queue.clear()
            return data

    def pause_s(self) -> float:
        real = getattr(self.clock, "real_seconds", None)
        if real is None:
            return 0.005  # a manual clock: tests move it; look often
        with self._lock:
            wait = real(self._next_mono - self.clock.monotonic())
        return min(PAUSE_S[1], max(PAUSE_S[0], wait))

    def _send(self, data: bytes) -> bool:
        for queue in self._queues.values():
            queue.extend(data)
        return bool(self._queues)

    def _header(self) -> bytes:
        width = 25 if self.layout_name == "2014" else 0
        names = [f"{n:>{width}}" if n in ("Time", "SysTime") else f"{n:>15}" for n in self.columns]
        return (IDENTITY[self.layout_name] + "\r\n" + ",".join(names) + "\r\n").encode("ascii")

    # ------------------------------------------------------------------ records

    def _advance(self) -> None:
        now = self.clock.monotonic()
        while self._next_mono <= now:
            self._produce(self._next_time, self._next_mono)
            self._next_mono += self.config.record_interval_s
            self._next_time += timedelta(seconds=self.config.record_interval_s)

    def response(self, species: str, true_value: float, t: datetime) -> float:
        """The analyzer's noise-free dry reading of a true dry value (gain, offset, drift)."""
        days = (t - self._epoch).total_seconds() / 86400.0
        return analyzer_reading(self.config.response, species, true_value, days)

    def _produce(self, t: datetime, mono: float) -> None:
        truth = self.gas(t)
        n = self.config.noise
        h2o = max(0.0, truth.get("h2o", 0.0) + self._noise.gauss(0.0, n.h2o))
        co2 = self.response("co2", truth.get("co2", 0.0), t) + self._noise.gauss(0.0, n.co2)
        ch4 = self.response("ch4", truth.get("ch4", 0.0), t) + self._noise.gauss(0.0, n.ch4)
        dilution = 1.0 - h2o / 100.0
        flag = 3
        if self.faults.active("fit_flag", mono, consume=True):
            flag = int(self.faults.param("fit_flag", "value", 2))
        wire = {
            "[CH4]_ppm": ch4 * dilution / 1000.0, "[CH4]d_ppm": ch4 / 1000.0,
            "[CO2]_ppm": co2 * dilution, "[CO2]d_ppm": co2, "[H2O]_ppm": h2o * 1e4,
            "GasP_torr": self.config.cell_pressure_torr + self._noise.gauss(0.0, 0.01),
            "GasT_C": self.config.cell_temp_c + self._noise.gauss(0.0, 0.002),
            "AmbT_C": self.config.ambient_temp_c, "RD0_us": 9.615, "RD1_us": 10.82,
            "LTC0_v": -0.2482, "LTC1_v": -4.3307, "Batt_v": 5.134, "BATT_PERCENT": 100.0,
            "Temp_Status_mA": 20.0, "Analyzer_Status_mA": 18.0,
            "Fit_Flag": flag, "MIU_VALVE": -1,
        }
        silenced = self.faults.active("silent", mono, consume=True)
        if self.faults.active("garbage", mono):
            for _ in range(self.faults.take_all("garbage")):
                self._send(self._noise_line())
        values: dict[str, float] = {}
        delivered = False
        if self._queues and not silenced:  # a record nobody will read is not formatted
            line, values = self._line(t, wire)
            delivered = self._send(line)
        entry = LedgerEntry(len(self._ledger), t, values, connected=bool(self._queues), truth=dict(truth))
        entry.fate = "silenced" if silenced else ("delivered" if delivered else "lost")
        self._ledger.append(entry)

    def _line(self, t: datetime, wire: dict[str, float]) -> tuple[bytes, dict[str, float]]:
        local = t.astimezone(self._zone)
        fields, values = [], {}
        for name in self.columns:
            if name == "Time":
                fields.append(f"{format_time(local, self.config.date_order):>25}" if self.layout_name == "2014"
                              else " " + format_time(local, self.config.date_order))
            elif name == "SysTime":
                fields.append(format_time(local + timedelta(seconds=SYSTIME_LAG_S), self.config.date_order))
            elif name == "MIU_DESC":
                fields.append(f"{'Disabled':>15}")
            elif name in ("Fit_Flag", "MIU_VALVE"):
                fields.append(f"{int(wire[name]):>15}" if self.layout_name == "2014" else f" {int(wire[name])}")
            else:
                value = wire.get(name, 0.0)  # the _sd columns: 0 at one record per average
                text = f"{value:.6e}" if self.layout_name == "2014" else _e5(value)
                values[name] = float(text)
                fields.append(f"{text:>15}" if self.layout_name == "2014" else " " + text)
        values["Fit_Flag"] = float(wire["Fit_Flag"])
        return (",".join(fields) + "\r\n").encode("ascii"), values

    def _noise_line(self) -> bytes:
        self.garbage_lines += 1
        # starts with a byte no record or header starts with
        return b"\xfe" + bytes(self._rng.choice(b"\x07\x1b~#@!?%&*abcXYZ0123456789,./")
                               for _ in range(self._rng.randint(3, 60))) + b"\r\n"

    # ------------------------------------------------------------------ faults

    def inject(self, fault: str, count: int | None = None, duration_s: float | None = None, **params: Any) -> None:
        self.faults.check(fault)
        with self._lock:
            self._advance()
            if fault == "firmware":
                self._firmware(params)
            elif fault == "disconnect":
                self._dropping.update(self._queues)
            else:
                self.faults.inject(fault, count, duration_s, **params)

    def _firmware(self, params: dict[str, Any]) -> None:
        if "columns" in params:
            columns = tuple(str(c) for c in params["columns"])
            Layout.from_names(columns)  # refuse a layout no reader could read
            unknown = [c for c in columns if c not in LAYOUTS["2019"] and c not in LAYOUTS["2014"]]
            if unknown:
                raise ValueError(f"the simulator cannot write column(s) {unknown}")
            self.columns = columns
        else:
            name = str(params.get("layout", "2019" if self.layout_name == "2014" else "2014"))
            if name not in LAYOUTS:
                raise ValueError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}")
            self.layout_name, self.columns = name, LAYOUTS[name]
        self._send(self._header())

    def clear_faults(self) -> None:
        self.faults.clear()

    # ------------------------------------------------------------------ what tests count

    @property
    def ledger(self) -> list[LedgerEntry]:
        with self._lock:
            self._advance()
            return list(self._ledger)

    def ledger_rows(self, since_seq: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            self._advance()
            return [{"seq": e.seq, "time": e.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                     "values": dict(e.values), "connected": e.connected, "fate": e.fate, "truth": dict(e.truth)}
                    for e in self._ledger[since_seq:]]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self._advance()
            counts = {"produced": len(self._ledger), "delivered": 0, "lost": 0, "silenced": 0,
                      "clients": len(self._queues), "connections": self.connections,
                      "garbage_lines": self.garbage_lines, "layout": self.layout_name}
            for e in self._ledger:
                counts[e.fate] += 1
            return counts


class LgrBench:
    """The bench model of the LGR analyzers (entry points lgr.gga, lgr.ugga, lgr.mgga)."""

    kind = "analyzer"
    Config = LgrInstrument

    @staticmethod
    def build(config: LgrInstrument, clock: Clock, gas: GasFn | None = None) -> LgrSimulator:
        return LgrSimulator(clock, config, gas)
