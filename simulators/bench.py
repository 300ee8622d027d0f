"""The simulator bench: builds simulated instruments from a BenchConfig, ties them together through
the gas (the valve's position decides what the analyzers measure), serves them, and takes
fault-injection requests on a small JSON-lines control port.

Control protocol (one JSON object per line, one JSON reply per line, over TCP):
    {"device": "picarro-1", "fault": "garbage", "count": 3}          -> {"ok": true}
    {"device": "picarro-1", "fault": "pressure", "duration_s": 60, "offset_torr": 8}
    {"device": "valve-1", "fault": "stuck"}                          (until clear_faults)
    {"device": "valve-1", "fault": "wrong_port", "port": 3}          (every move lands on 3)
    {"device": "valve-1", "fault": "silent"}                         (obeys, answers nothing)
    {"device": "flow-1", "fault": "no_flow"}        the sample line stops: flow 0, cell frozen
    {"device": "flow-1", "fault": "silent" | "stuck" | "power_off"}  the Modbus device itself
    {"device": "cems-flow", "fault": "blocked_pitot", "duration_s": 7200}   a [stack] device
        (blocked_pitot, co2_over_range, device_lost; simulators/stack_bench.py)
    {"device": ID, "cmd": "clear_faults"}                           -> {"ok": true}
    {"cmd": "stats"}                    -> {"ok": true, "stats": {ID: {...counts}}}
    {"cmd": "ledger", "device": "picarro-1", "since_seq": 0}   -> {"ok": true, "ledger": [...]}
        (a valve's ledger is its move log)
    {"cmd": "truth", "device": "picarro-1", "from": ISO, "to": ISO}
        -> {"ok": true, "truth": [{"time": minute start, "n": records, "co2": .., "ch4": ..,
            "co": .., "n2o": .., "h2o": ..}, ...]}: per-minute means of the true cell values of the records
            the analyzer made in each minute (from <= minute start < to)
    {"cmd": "stack_truth", "from": ISO, "to": ISO}  -> {"ok": true, "true_mass_t": ...}: the [stack]'s
        true CO2 over the minutes from <= minute start < to
    {"cmd": "endpoints"}                -> {"ok": true, "endpoints": {...}}
Errors come back as {"ok": false, "error": "..."}.

Without a valve each analyzer measures its own `DiurnalGas`; with one, every analyzer measures the
`SampleLine` of simulators/gas.py (one line from the valve's outlet).

Each instrument's `model = "..."` is resolved through the entry-point group `ghgnet.simulators`
(drivers.registry.load_simulator), where the bundled models below register exactly as a third
party's would. A registered bench model has `kind` ("analyzer", "valve" or "modbus"), `Config`
(its table; an analyzer's extends simulators.config.InstrumentConfig) and
`build(config, clock, gas)` returning the simulated device (`receive(bytes) -> bytes`; an analyzer
may also offer inject, clear_faults, stats, ledger_rows and ledger for the control port).

A device that is not a byte stream (an analyzer on Modbus, or one that publishes to its own MQTT
broker) serves itself: it has `start()`, `stop()` and `url` (what the station's driver config
says to reach it) and no `receive`; the bench starts and stops it and reports its `url`.
"""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drivers.registry import load_simulator
from ghgnet.clock import Clock
from ghgnet.timeutil import iso_utc, minute_start, parse_utc
from simulators.config import (
    BenchConfig,
    DiurnalGasConfig,
    GasConfig,
    InstrumentConfig,
    ModbusInstrument,
    PicarroInstrument,
    ValveInstrument,
)
from simulators.gas import (
    AmbientInlet,
    AmbientModel,
    Cylinder,
    HumidifiedCylinder,
    Port,
    SampleLine,
    stream_key,
    value_noise,
)
from simulators.modbus.device import ModbusDeviceSimulator
from simulators.picarro.g2401 import GasFn, LedgerEntry, PicarroSimConfig, PicarroSimulator
from simulators.serve import LineDevice, Listener, PtyServer, TcpServer
from simulators.stack_bench import LIVE_FAULTS, StackPlant
from simulators.vici.multiposition import ViciValveSimulator


@dataclass(frozen=True)
class DiurnalGas:
    """True dry mole fractions (co2 ppm, ch4/co/n2o ppb) and h2o (%): base + amplitude * cos(day)."""

    base: dict[str, float]
    amplitude: dict[str, float]
    peak_hour_utc: float = 6.0

    @classmethod
    def from_config(cls, cfg: DiurnalGasConfig) -> "DiurnalGas":
        base = {"co2": cfg.co2, "ch4": cfg.ch4, "co": cfg.co, "n2o": cfg.n2o, "h2o": cfg.h2o}
        return cls(base, dict(cfg.diurnal_amplitude), cfg.peak_hour_utc)

    def __call__(self, t: datetime) -> dict[str, float]:
        hours = t.hour + t.minute / 60 + t.second / 3600
        phase = math.cos(2 * math.pi * (hours - self.peak_hour_utc) / 24)
        return {k: max(0.0, v + self.amplitude.get(k, 0.0) * phase) for k, v in self.base.items()}


class TrackedTcpServer(TcpServer):
    """A TcpServer that tells its device when a client connects and leaves, so the simulator's
    ledger can tell records made while nobody was connected from the others."""

    def _serve(self, conn: socket.socket) -> None:
        hook_in = getattr(self.device, "client_connected", None)
        hook_out = getattr(self.device, "client_disconnected", None)
        if hook_in:
            hook_in()
        try:
            super()._serve(conn)
        finally:
            if hook_out:
                hook_out()


def build_picarro(inst: PicarroInstrument, clock: Clock, gas: GasFn | None = None) -> PicarroSimulator:
    """The analyzer of `inst`, measuring `gas` (default: its own diurnal gas table)."""
    config = PicarroSimConfig(
        columns=list(inst.columns),
        seed=inst.seed,
        noise=inst.noise.model_dump(),
        record_interval_s=inst.record_interval_s,
        timezone=inst.timezone,
        record_format=inst.record_format,
        gain=dict(inst.response.gain),
        offset=dict(inst.response.offset),
        drift_per_day=dict(inst.response.drift_per_day),
    )
    if inst.model == "picarro.g2301":
        config.water_correction.pop("co", None)
    return PicarroSimulator(clock, config, gas or DiurnalGas.from_config(inst.gas))


class PicarroBench:
    """The bench model of the Picarro analyzers (entry points picarro.g2401, picarro.g2301)."""

    kind = "analyzer"
    Config = PicarroInstrument

    @staticmethod
    def build(config: PicarroInstrument, clock: Clock, gas: GasFn | None = None) -> PicarroSimulator:
        return build_picarro(config, clock, gas)


class ViciBench:
    """The bench model of the VICI multiposition valve (entry point vici.multiposition)."""

    kind = "valve"
    Config = ValveInstrument

    @staticmethod
    def build(config: ValveInstrument, clock: Clock, gas: GasFn | None = None) -> ViciValveSimulator:
        return ViciValveSimulator.from_config(clock, config.sim_config())


class ModbusBench:
    """The bench model of a Modbus sensor on the sample line (entry point modbus.device); `gas` is
    the LineSensors it reads."""

    kind = "modbus"
    Config = ModbusInstrument

    @staticmethod
    def build(config: ModbusInstrument, clock: Clock, gas: "LineSensors") -> ModbusDeviceSimulator:
        return build_modbus(config, clock, gas)


def serves_itself(device: Any) -> bool:
    """A simulated device that runs its own server (see the module docstring), not a byte stream."""
    return not hasattr(device, "receive") and all(hasattr(device, a) for a in ("start", "stop", "url"))


def build_instrument(inst: InstrumentConfig, clock: Clock, gas: GasFn | None) -> LineDevice:
    """The simulated analyzer of `inst`, built by the simulator registered for its model."""
    return load_simulator(inst.model).build(inst, clock, gas)


def build_line(gas: GasConfig, valve: ViciValveSimulator, start_position: int) -> SampleLine:
    """The sample line behind `valve`: each configured port's source and flush time constant."""
    a = gas.ambient
    model = AmbientModel(
        base={"co2": a.co2, "ch4": a.ch4, "co": a.co, "n2o": a.n2o, "h2o": a.h2o},
        diurnal_amplitude=dict(a.diurnal_amplitude),
        peak_hour_utc=a.peak_hour_utc,
        synoptic_std=dict(a.synoptic_std),
        synoptic_timescale_h=a.synoptic_timescale_h,
        variability_std=dict(a.variability_std),
        variability_timescale_s=a.variability_timescale_s,
        reference_height_m=a.reference_height_m,
        height_exponent=a.height_exponent,
        seed=gas.seed,
    )
    ports: dict[int, Port] = {}
    for inlet in gas.inlets:
        tau = gas.inlet_flush_tau_s if inlet.flush_tau_s is None else inlet.flush_tau_s
        ports[inlet.port] = Port(inlet.port, inlet.name, "inlet", AmbientInlet(inlet.name, inlet.height_m, model), tau)
    for cyl in gas.cylinders:
        tau = gas.cylinder_flush_tau_s if cyl.flush_tau_s is None else cyl.flush_tau_s
        values = {"co2": cyl.co2, "ch4": cyl.ch4, "co": cyl.co, "n2o": cyl.n2o, "h2o": cyl.h2o}
        source = Cylinder(cyl.name, values, cyl.role)
        if cyl.humidifier is not None:
            h = cyl.humidifier
            source = HumidifiedCylinder(source, h.h2o_start, h.h2o_end, h.period_s)
        ports[cyl.port] = Port(cyl.port, cyl.name, "cylinder", source, tau)
    return SampleLine(ports, valve, start_position, dict(model.base))


class LineSensors:
    """What a Modbus sensor on the sample line reads: `sensors(t) -> {flow, pressure, temperature,
    humidity}`.

    Flow (sccm) and pressure (hPa) hold their nominal values with a little seeded smooth noise while
    gas flows; with no flow (a closed port, or the line blocked) the flow reads 0 and the pressure
    drops to the pump side's. Deterministic in absolute time.
    """

    def __init__(self, line: SampleLine | None, gas: GasConfig | None, seed: int) -> None:
        self.line = line
        self.cfg = (gas or GasConfig()).line
        self._keys = (stream_key(seed, "flow"), stream_key(seed, "pressure"))
        self._blocked = False

    def __call__(self, t: datetime) -> dict[str, float]:
        s = t.timestamp()
        flowing = self.line.flowing(t) if self.line is not None else not self._blocked
        if not flowing:
            return {"flow": 0.0, "pressure": self.cfg.no_flow_pressure_hpa, "temperature": self.cfg.temperature_c,
                    "humidity": self.cfg.humidity_pct}
        return {
            "flow": self.cfg.flow_sccm + self.cfg.flow_noise_sccm * value_noise(self._keys[0], s, 10.0),
            "pressure": self.cfg.pressure_hpa + self.cfg.pressure_noise_hpa * value_noise(self._keys[1], s, 10.0),
            "temperature": self.cfg.temperature_c,
            "humidity": self.cfg.humidity_pct,
        }

    def block(self, t: datetime) -> None:
        self._blocked = True
        if self.line is not None:
            self.line.block_flow(t)

    def restore(self, t: datetime) -> None:
        self._blocked = False
        if self.line is not None:
            self.line.restore_flow(t)


def build_modbus(inst: ModbusInstrument, clock: Clock, sensors: LineSensors) -> ModbusDeviceSimulator:
    return ModbusDeviceSimulator(
        inst.points, sensors, unit_id=inst.unit_id, mode=inst.mode, host=inst.host, port=inst.port,
        clock=clock, link=inst.pty_link, name=inst.id,
    )


def truth_minutes(entries: list[LedgerEntry], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per-minute means of the true cell values of the records made in each minute (minute start
    stamps, UTC), for the minutes with start <= minute start < end."""
    sums: dict[datetime, dict[str, float]] = {}
    counts: dict[datetime, int] = {}
    for e in entries:
        m = minute_start(e.time)
        if not (start <= m < end) or not e.truth:
            continue
        acc = sums.setdefault(m, {})
        for q, v in e.truth.items():
            acc[q] = acc.get(q, 0.0) + v
        counts[m] = counts.get(m, 0) + 1
    return [
        {"time": iso_utc(m), "n": counts[m], **{q: v / counts[m] for q, v in sums[m].items()}}
        for m in sorted(sums)
    ]


class ControlServer(Listener):
    """JSON-lines control port; each request is handled by `handler(dict) -> dict`."""

    thread_name = "bench-control"

    def __init__(self, handler: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._handler = handler

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        for data in self._chunks(conn, 65536):
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("a request is a JSON object")
                    reply = self._handler(request)
                except (ValueError, KeyError, TypeError) as exc:
                    reply = {"ok": False, "error": str(exc)}
                conn.sendall(json.dumps(reply).encode() + b"\n")


MODBUS_FAULTS = ("no_flow", "silent", "stuck", "power_off")


class Bench:
    """The configured simulated instruments with their servers, the gas that ties them, and a
    control port.

    In-process use (tests): `Bench(config, clock)`; `bench.devices[ID]` are the analyzers,
    `bench.valve` the valve simulator (or None), `bench.line` the SampleLine (the true cell gas,
    `bench.line(t)`, and each port's source, `bench.line.source_at(port, t)`), `bench.modbus[ID]`
    the Modbus simulators; `bench.truth(ID, start, end)` the per-minute true means. `start()`
    serves them all; `stop()` stops every server it started.
    """

    def __init__(self, config: BenchConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.valve: ViciValveSimulator | None = None
        self.line: SampleLine | None = None
        if config.valve is not None and config.gas is not None:
            self.valve = load_simulator(config.valve.model).build(config.valve, clock)
            self.line = build_line(config.gas, self.valve, config.valve.position)
        self.devices: dict[str, Any] = {
            inst.id: build_instrument(inst, clock, self.line) for inst in config.instruments
        }
        self.sensors: dict[str, LineSensors] = {
            m.id: LineSensors(self.line, config.gas, m.seed) for m in config.modbus
        }
        self.modbus: dict[str, ModbusDeviceSimulator] = {
            m.id: load_simulator(m.model).build(m, clock, self.sensors[m.id]) for m in config.modbus
        }
        self.stack: StackPlant | None = StackPlant(config.stack, clock) if config.stack else None
        if self.stack is not None:
            self.modbus.update(self.stack.devices)
        self.tcp: dict[str, TcpServer] = {}
        self.pty: dict[str, PtyServer] = {}
        self.self_served: dict[str, Any] = {}
        self.control: ControlServer | None = None
        self._started = False

    def start(self, control: bool = True) -> "Bench":
        self._started = True
        try:
            for inst in self.config.instruments:
                dev = self.devices[inst.id]
                if serves_itself(dev):
                    self.self_served[inst.id] = dev.start() or dev
                    continue
                self.tcp[inst.id] = TrackedTcpServer(dev, inst.host, inst.port).start()
                if inst.pty_link is not None:
                    self.pty[inst.id] = PtyServer(dev, inst.pty_link).start()
            if self.valve is not None and self.config.valve is not None:
                v = self.config.valve
                self.tcp[v.id] = TcpServer(self.valve, v.host, v.port).start()
                if v.pty_link is not None:
                    self.pty[v.id] = PtyServer(self.valve, v.pty_link).start()
            for sim in self.modbus.values():
                sim.start()
            if control:
                self.control = ControlServer(
                    self.handle, self.config.control.host, self.config.control.port
                ).start()
        except (OSError, RuntimeError):
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._started = False
        if self.control is not None:
            self.control.stop()
            self.control = None
        for server in [*self.tcp.values(), *self.pty.values()]:
            server.stop()
        for sim in [*self.modbus.values(), *self.self_served.values()]:
            sim.stop()
        self.self_served.clear()
        self.tcp.clear()
        self.pty.clear()

    def __enter__(self) -> "Bench":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def endpoints(self) -> dict[str, Any]:
        """What `station-sim run` prints: each instrument's driver and URLs, and the control port.

        `url` is what the station's driver config says to reach it (the TCP one when served)."""
        instruments: dict[str, dict[str, Any]] = {}
        served: list[tuple[str, str, Any]] = [(i.id, i.model, i.pty_link) for i in self.config.instruments]
        if self.config.valve is not None:
            served.append((self.config.valve.id, self.config.valve.model, self.config.valve.pty_link))
        for ident, model, link in served:
            entry: dict[str, Any] = {"driver": model}
            if ident in self.self_served:
                entry["url"] = self.self_served[ident].url
            if ident in self.tcp:
                entry["tcp"] = entry["url"] = self.tcp[ident].url
            if ident in self.pty:
                entry["pty"] = self.pty[ident].path
                entry["pty_link"] = os.path.normpath(link)
                entry.setdefault("url", entry["pty_link"])
            instruments[ident] = entry
        for m in self.config.modbus:
            sim = self.modbus[m.id]
            entry = {"driver": m.model, "unit_id": m.unit_id}
            if sim.running:
                entry["url"] = sim.url
                if m.mode == "rtu" and m.pty_link is None:
                    entry["pty"] = sim.url
            instruments[m.id] = entry
        for ident, sim in (self.stack.devices.items() if self.stack else ()):
            entry = {"driver": "modbus.device", "unit_id": sim.unit_id}
            if sim.running:
                entry["url"] = sim.url
            instruments[ident] = entry
        return {
            "instruments": instruments,
            "control": self.control.address if self.control else None,
        }

    def known(self) -> list[str]:
        return [*self.devices, *([self.config.valve.id] if self.config.valve else []), *self.modbus]

    def _analyzer(self, request: dict[str, Any]) -> Any:
        name = request.get("device")
        if name not in self.devices:
            raise ValueError(f"unknown analyzer {name!r}; known: {', '.join(self.devices)}")
        return self.devices[name]

    def _offered(self, name: str, method: str) -> Any:
        """The analyzer's `method`; a simulator that does not offer it is a clear error."""
        fn = getattr(self.devices[name], method, None)
        if fn is None:
            raise ValueError(f"analyzer {name!r} ({type(self.devices[name]).__name__}) offers no {method}")
        return fn

    def _kind(self, request: dict[str, Any]) -> tuple[str, str]:
        name = request.get("device")
        if name in self.devices:
            return "analyzer", name
        if self.config.valve is not None and name == self.config.valve.id:
            return "valve", name
        if name in self.modbus:
            return "modbus", name
        raise ValueError(f"unknown device {name!r}; known: {', '.join(self.known())}")

    # --- what tests read in-process -------------------------------------------------------------

    def truth(self, device: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Per-minute means of the true cell values of `device`'s records (see truth_minutes)."""
        self._analyzer({"device": device})
        return truth_minutes(self._offered(device, "ledger"), start, end)

    def stats(self, name: str) -> dict[str, Any]:
        kind, _ = self._kind({"device": name})
        if kind == "analyzer":
            stats = getattr(self.devices[name], "stats", None)
            return dict(stats()) if stats else {}
        if kind == "valve":
            assert self.valve is not None
            moves = self.valve.moves
            return {"position": self.valve.current_position(), "moving": self.valve.is_moving(),
                    "moves": len(moves), "failed_moves": sum(m.fault is not None for m in moves)}
        sim = self.modbus[name]
        if name not in self.sensors:  # a stack device: the stack's values this minute
            return {"running": sim.running, "requests": len(sim.requests), "errors": len(sim.errors)}
        return {"running": sim.running, "requests": len(sim.requests), **self.sensors[name](self.clock.now())}

    # --- the control port -------------------------------------------------------------------------

    def _inject(self, request: dict[str, Any]) -> None:
        kind, name = self._kind(request)
        fault = str(request["fault"])
        params = {k: v for k, v in request.items() if k not in ("device", "fault", "count", "duration_s")}
        if kind == "analyzer":
            self._offered(name, "inject")(fault, request.get("count"), request.get("duration_s"), **params)
        elif kind == "valve":
            assert self.valve is not None
            self.valve.inject(fault, **params)
        elif self.stack is not None and name in self.stack.devices and fault in LIVE_FAULTS:
            self.stack.inject(name, fault, request.get("duration_s"), **params)
        else:
            if fault not in MODBUS_FAULTS:
                raise ValueError(f"unknown fault {fault!r}; known: {', '.join(MODBUS_FAULTS)}")
            if fault == "no_flow" and name in self.sensors:
                self.sensors[name].block(self.clock.now())
            elif fault == "power_off":
                self.modbus[name].power_off()
            else:
                self.modbus[name].inject(fault)

    def _clear(self, request: dict[str, Any]) -> None:
        kind, name = self._kind(request)
        if kind == "analyzer":
            self._offered(name, "clear_faults")()
        elif kind == "valve":
            assert self.valve is not None
            self.valve.clear()
        else:
            if name in self.sensors:
                self.sensors[name].restore(self.clock.now())
            elif self.stack is not None:
                self.stack.clear(name)
            self.modbus[name].clear()
            if self._started and not self.modbus[name].running:
                self.modbus[name].power_on()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request -> its reply (see the module docstring)."""
        if "fault" in request:
            self._inject(request)
            return {"ok": True}
        cmd = request.get("cmd")
        if cmd == "stats":
            names = [request["device"]] if "device" in request else self.known()
            return {"ok": True, "stats": {n: self.stats(n) for n in names}}
        if cmd == "ledger":
            kind, name = self._kind(request)
            if kind == "valve":
                assert self.valve is not None
                rows = [{"time": iso_utc(m.time), "from": m.from_position, "to": m.to_position,
                         "landed": m.landed, "duration_s": m.duration_s, "fault": m.fault}
                        for m in self.valve.moves[int(request.get("since_seq", 0)):]]
                return {"ok": True, "ledger": rows}
            self._analyzer(request)
            rows = self._offered(request["device"], "ledger_rows")(int(request.get("since_seq", 0)))
            return {"ok": True, "ledger": rows}
        if cmd == "truth":
            if "from" not in request or "to" not in request:
                raise ValueError("truth needs 'from' and 'to' (ISO 8601 UTC)")
            start, end = parse_utc(str(request["from"])), parse_utc(str(request["to"]))
            return {"ok": True, "truth": self.truth(str(request.get("device")), start, end)}
        if cmd == "clear_faults":
            self._clear(request)
            return {"ok": True}
        if cmd == "stack_truth":
            if self.stack is None:
                raise ValueError("this bench has no [stack]")
            if "from" not in request or "to" not in request:
                raise ValueError("stack_truth needs 'from' and 'to' (ISO 8601 UTC)")
            start, end = parse_utc(str(request["from"])), parse_utc(str(request["to"]))
            return {"ok": True, "true_mass_t": self.stack.true_mass_t(start, end)}
        if cmd == "endpoints":
            return {"ok": True, "endpoints": self.endpoints()}
        raise ValueError(
            f"unknown request {request!r}: give 'fault' or cmd stats|ledger|truth|clear_faults|endpoints"
        )
