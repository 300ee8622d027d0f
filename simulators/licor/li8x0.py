"""A simulated LI-COR LI-830 / LI-850 speaking the analyzers' XML grammar (see drivers/licor/li8x0.py
for the sources): `<li850><data>?</data></li850>` answers the current record,
`<li850><cfg><outrate>N</outrate></cfg></li850>` switches to streaming a record every N simulated
seconds (0: polled), other well-formed commands are acknowledged `<li850><ack>true</ack></li850>`,
XML that does not parse gets `<ack>false</ack>`. Lines end in LF; values in LI-COR's exponent form.

It measures the gas it is given (dry co2 ppm, h2o %): the cell holds the humid sample, so `<co2>`
is the analyzer's response to the dry value diluted by the water in the cell, `<h2o>` is in
mmol/mol. An LI-830 (no H2O channel) is fed from a drier by default (`dried = True`): its cell
holds dry gas.

Faults (bench control port, besides garbage, silent and disconnect):
    error        records carry an `<error>` element (param `message`)
    malformed    the record line is cut in the middle (not well-formed XML)
    cell_temp    the cell temperature is off its setpoint (param `offset_c`, default -5)
    low_voltage  the supply reads low (param `volts`, default 9.0)

Streaming is pushed by the servers of this module (`StreamingTcpServer`, `StreamingPtyServer`),
which serve polled clients as well; the bench serves the simulator through them (`Li8x0Served`).
"""

from __future__ import annotations

import math
import os
import select
import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from ghgnet.clock import Clock
from simulators.bench import DiurnalGas
from simulators.config import AnalyzerResponseConfig, DiurnalGasConfig, InstrumentConfig, NoiseConfig
from simulators.picarro.g2401 import GasFn
from simulators.polled import COMMON_FAULTS, PolledSimulator, Response
from simulators.serve import Disconnect, PtyServer, TcpServer

FAULTS = (*COMMON_FAULTS, "error", "malformed", "cell_temp", "low_voltage")
VERSION = "2.0.4"  # what <ver>?</ver> answers (a stand-in)


def _e(value: float) -> str:
    """LI-COR's number format, e.g. 4.2013000e2."""
    return f"{value:.7e}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")


def dew_point_c(h2o_percent: float, pressure_kpa: float) -> float:
    """Dew point (degC) of water vapour at this mole fraction and pressure (Magnus, WMO-No. 8)."""
    e_hpa = max(h2o_percent / 100.0 * pressure_kpa * 10.0, 1e-6)
    g = math.log(e_hpa / 6.112)
    return 243.12 * g / (17.62 - g)


class Li8x0Simulator(PolledSimulator):
    """An LI-850 (`model="licor.li850"`) or LI-830; faults via `inject`."""

    TERMINATOR = b"\n"
    LINE_END = "\n"
    FAULTS = FAULTS

    def __init__(self, clock: Clock, gas: GasFn, response: Response | None = None, seed: int = 0,
                 model: str = "licor.li850", dried: bool | None = None, cell_temp_c: float = 51.25,
                 cell_pressure_kpa: float = 97.1, input_voltage: float = 24.0, serial: str = "LI850-SIM") -> None:
        super().__init__(clock, gas, response, seed)
        self.root = "li830" if model == "licor.li830" else "li850"
        self.dried = (self.root == "li830") if dried is None else dried
        self.cell_temp_c = cell_temp_c
        self.cell_pressure_kpa = cell_pressure_kpa
        self.input_voltage = input_voltage
        self.serial = serial
        self.outrate_s = 0.0
        self._next_stream: float | None = None  # simulated monotonic time of the next streamed record

    # ------------------------------------------------------------------ records

    def _measure(self, t: datetime) -> str:
        """Make one record at `t`: its line (in the ledger with the truth it came from)."""
        true = self.gas(t)
        h2o = 0.0 if self.dried else max(0.0, true.get("h2o", 0.0))
        co2_dry = self.response("co2", true.get("co2", 0.0), t)
        co2 = co2_dry * (1.0 - h2o / 100.0) + self.noise("co2")
        h2o_mmol = max(0.0, h2o * 10.0 + self.noise("h2o") * 10.0)
        temp = self.cell_temp_c + self._noise_rng.gauss(0.0, 0.01)
        fault = self.faults.active("cell_temp", consume=True)
        if fault:
            temp += float(fault.params.get("offset_c", -5.0))
        volts = self.input_voltage + self._noise_rng.gauss(0.0, 0.02)
        fault = self.faults.active("low_voltage", consume=True)
        if fault:
            volts = float(fault.params.get("volts", 9.0))
        pres = self.cell_pressure_kpa + self._noise_rng.gauss(0.0, 0.02)
        wire = {"celltemp": temp, "cellpres": pres, "co2": co2, "co2abs": 0.07 * co2 / 420.0}
        if self.root == "li850":
            wire |= {"h2o": h2o_mmol, "h2odewpoint": dew_point_c(h2o_mmol / 10.0, pres),
                     "h2oabs": 0.004 * h2o_mmol}
        wire["ivolt"] = volts
        body = "".join(f"<{k}>{_e(v)}</{k}>" for k, v in wire.items())
        self.record(t, {k: float(_e(v)) for k, v in wire.items()}, {"co2": true.get("co2", 0.0), "h2o": h2o})
        error = self.faults.active("error", consume=True)
        extra = f"<error>{error.params.get('message', 'source failure')}</error>" if error else ""
        line = f"<{self.root}><data>{body}</data>{extra}</{self.root}>"
        if self.faults.active("malformed", consume=True):
            line = line[: len(line) // 2]
        return line + self.LINE_END

    def stream_output(self) -> bytes:
        """The streamed records due since the last call (empty when polled)."""
        with self._lock:
            if self.outrate_s <= 0 or self._next_stream is None:
                return b""
            now_mono, now = self.clock.monotonic(), self.clock.now()
            out = []
            while self._next_stream <= now_mono:
                t = now - timedelta(seconds=now_mono - self._next_stream)
                self._next_stream += self.outrate_s
                if self.clients and not self.faults.active("silent"):
                    out.append(self._measure(t))
            return "".join(out).encode("ascii")

    # ------------------------------------------------------------------ commands

    def _reply(self, inner: str) -> bytes:
        return f"<{self.root}>{inner}</{self.root}>{self.LINE_END}".encode("ascii")

    def _answer(self, line: str) -> bytes:
        try:
            elem = ET.fromstring(line)
        except ET.ParseError:
            return self._reply("<ack>false</ack>")
        for e in elem.iter():
            e.tag = e.tag.lower()
        if elem.tag != self.root:
            return self._reply("<ack>false</ack>")
        if elem.find("data") is not None:
            return self._measure(self.clock.now()).encode("ascii")
        if elem.find("ver") is not None:
            return self._reply(f"<ver>{VERSION}</ver>")
        if elem.find("serialnum") is not None:
            return self._reply(f"<serialnum>{self.serial}</serialnum>")
        rate = elem.find("cfg/outrate")
        if rate is not None:
            try:
                value = float((rate.text or "").strip())
            except ValueError:
                return self._reply("<ack>false</ack>")
            if value < 0 or value > 20:
                return self._reply("<ack>false</ack>")
            self.outrate_s = value
            self._next_stream = self.clock.monotonic() + value if value > 0 else None
        return self._reply("<ack>true</ack>")

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "outrate_s": self.outrate_s}


# --------------------------------------------------------------------------- serving a stream


class StreamingTcpServer(TcpServer):
    """A TcpServer that also pushes the device's `stream_output()` to each client."""

    thread_name = "sim-tcp-stream"
    PUSH_EVERY_S = 0.02  # real seconds between looks for streamed records

    def _serve(self, conn: socket.socket) -> None:
        self.device.client_connected()
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([conn], [], [], self.PUSH_EVERY_S)
                if ready:
                    data = conn.recv(4096)
                    if not data or not self._answer(conn, data):
                        return
                pushed = self.device.stream_output()
                if pushed:
                    conn.sendall(pushed)
        finally:
            self.device.client_disconnected()


class StreamingPtyServer(PtyServer):
    """A PtyServer that also pushes the device's `stream_output()` down the line."""

    PUSH_EVERY_S = 0.02

    def start(self) -> StreamingPtyServer:
        self.device.client_connected()  # a serial line is always "connected"
        super().start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], self.PUSH_EVERY_S)
            except (OSError, ValueError):
                return
            reply = b""
            if ready:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                try:
                    reply = self.device.receive(data) if data else b""
                except Disconnect:
                    reply = b""
            reply += self.device.stream_output()
            if reply:
                self._send(reply)


# --------------------------------------------------------------------------- the bench model


class Li8x0Instrument(InstrumentConfig):
    """One simulated LI-830/LI-850 of `[[instruments]]`, served on TCP and optionally a pty."""

    model: Literal["licor.li830", "licor.li850"] = Field(description="driver name the station uses for it")
    noise: NoiseConfig = Field(default_factory=lambda: NoiseConfig(co2=0.3, ch4=0.0, co=0.0, h2o=0.002),
                               description="co2 ppm, h2o % (other species unused)")
    response: AnalyzerResponseConfig = Field(default_factory=AnalyzerResponseConfig)
    gas: DiurnalGasConfig = Field(
        default_factory=DiurnalGasConfig,
        description="the gas it measures when the bench has no valve (with a valve: the [gas] section)",
    )
    dried: bool | None = Field(default=None, description="sample dried upstream (default: LI-830 yes, LI-850 no)")
    cell_temp_c: float = 51.25
    cell_pressure_kpa: float = 97.1
    input_voltage: float = 24.0
    serial: str = "LI850-SIM"


class Li8x0Served:
    """The simulator with its own streaming-capable servers (TCP, and a pty when `pty_link` is
    set), started and stopped by the bench; the station's driver config uses `url`."""

    def __init__(self, sim: Li8x0Simulator, host: str, port: int, pty_link: Any) -> None:
        self.sim = sim
        self._where = (host, port, pty_link)
        self.tcp: StreamingTcpServer | None = None
        self.pty: StreamingPtyServer | None = None

    def start(self) -> Li8x0Served:
        host, port, link = self._where
        self.tcp = StreamingTcpServer(self.sim, host, port).start()
        if link is not None:
            self.pty = StreamingPtyServer(self.sim, link).start()
        return self

    def stop(self) -> None:
        for server in (self.pty, self.tcp):
            if server is not None:
                server.stop()
        self.tcp = self.pty = None

    @property
    def url(self) -> str:
        if self.pty is not None:
            return self.pty.url
        return self.tcp.url if self.tcp is not None else ""

    # what the bench's control port asks of an analyzer
    def inject(self, *args: Any, **kwargs: Any) -> None:
        self.sim.inject(*args, **kwargs)

    def clear_faults(self) -> None:
        self.sim.clear_faults()

    def stats(self) -> dict[str, Any]:
        return self.sim.stats()

    @property
    def ledger(self) -> list:
        return self.sim.ledger

    def ledger_rows(self, since_seq: int = 0) -> list[dict[str, Any]]:
        return self.sim.ledger_rows(since_seq)


def build_li8x0(config: Li8x0Instrument, clock: Clock, gas: GasFn | None = None) -> Li8x0Simulator:
    response = Response(gain=dict(config.response.gain), offset=dict(config.response.offset),
                        drift_per_day=dict(config.response.drift_per_day),
                        noise={"co2": config.noise.co2, "h2o": config.noise.h2o})
    return Li8x0Simulator(clock, gas or DiurnalGas.from_config(config.gas), response, config.seed, config.model,
                          config.dried, config.cell_temp_c, config.cell_pressure_kpa, config.input_voltage,
                          config.serial)


class Li8x0Bench:
    """The bench model of the LI-830/LI-850 (entry points licor.li830, licor.li850)."""

    kind = "analyzer"
    Config = Li8x0Instrument

    @staticmethod
    def build(config: Li8x0Instrument, clock: Clock, gas: GasFn | None = None) -> Li8x0Served:
        return Li8x0Served(build_li8x0(config, clock, gas), config.host, config.port, config.pty_link)
