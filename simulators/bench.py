"""The simulator bench: builds simulated instruments from a BenchConfig, serves them, and takes
fault-injection requests on a small JSON-lines control port.

Control protocol (one JSON object per line, one JSON reply per line, over TCP):
    {"device": "picarro-1", "fault": "garbage", "count": 3}          -> {"ok": true}
    {"device": "picarro-1", "fault": "pressure", "duration_s": 60, "offset_torr": 8}
    {"device": "picarro-1", "cmd": "clear_faults"}                  -> {"ok": true}
    {"cmd": "stats"}                    -> {"ok": true, "stats": {"picarro-1": {...counts}}}
    {"cmd": "ledger", "device": "picarro-1", "since_seq": 0}   -> {"ok": true, "ledger": [...]}
    {"cmd": "endpoints"}                -> {"ok": true, "endpoints": {...}}
Errors come back as {"ok": false, "error": "..."}.

The gas model is its own small piece (`DiurnalGas`): a later bench replaces it with a valve-driven
gas bench (inlets, cylinders, flush time constants) behind the same call, `gas(t) -> values`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simulators.config import BenchConfig, DiurnalGasConfig, PicarroInstrument
from simulators.picarro.g2401 import PicarroSimConfig, PicarroSimulator
from simulators.serve import PtyServer, TcpServer
from station_agent.clock import Clock


@dataclass(frozen=True)
class DiurnalGas:
    """True dry mole fractions (co2 ppm, ch4/co ppb) and h2o (%): base + amplitude * cos(day)."""

    base: dict[str, float]
    amplitude: dict[str, float]
    peak_hour_utc: float = 6.0

    @classmethod
    def from_config(cls, cfg: DiurnalGasConfig) -> "DiurnalGas":
        base = {"co2": cfg.co2, "ch4": cfg.ch4, "co": cfg.co, "h2o": cfg.h2o}
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


def build_picarro(inst: PicarroInstrument, clock: Clock) -> PicarroSimulator:
    config = PicarroSimConfig(
        columns=list(inst.columns),
        seed=inst.seed,
        noise=inst.noise.model_dump(),
        record_interval_s=inst.record_interval_s,
        timezone=inst.timezone,
        record_format=inst.record_format,
    )
    if inst.model == "picarro.g2301":
        config.water_correction.pop("co", None)
    return PicarroSimulator(clock, config, DiurnalGas.from_config(inst.gas))


class ControlServer:
    """JSON-lines control port; each request is handled by `handler(dict) -> dict`."""

    def __init__(self, handler: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "ControlServer":
        t = threading.Thread(target=self._accept_loop, name=f"bench-control-{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.2)
            t = threading.Thread(target=self._serve, args=(conn,), name="bench-control-client", daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
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
                    try:
                        conn.sendall(json.dumps(reply).encode() + b"\n")
                    except OSError:
                        return

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        for t in self._threads:
            t.join(timeout=2)


class Bench:
    """The configured simulated instruments with their TCP (and pty) servers and a control port."""

    def __init__(self, config: BenchConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.devices: dict[str, PicarroSimulator] = {
            inst.id: build_picarro(inst, clock) for inst in config.instruments
        }
        self.tcp: dict[str, TcpServer] = {}
        self.pty: dict[str, PtyServer] = {}
        self.control: ControlServer | None = None

    def start(self, control: bool = True) -> "Bench":
        try:
            for inst in self.config.instruments:
                dev = self.devices[inst.id]
                self.tcp[inst.id] = TrackedTcpServer(dev, inst.host, inst.port).start()
                if inst.pty_link is not None:
                    self.pty[inst.id] = PtyServer(dev, inst.pty_link).start()
            if control:
                self.control = ControlServer(
                    self.handle, self.config.control.host, self.config.control.port
                ).start()
        except OSError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.control is not None:
            self.control.stop()
            self.control = None
        for server in [*self.tcp.values(), *self.pty.values()]:
            server.stop()
        self.tcp.clear()
        self.pty.clear()

    def endpoints(self) -> dict[str, Any]:
        """What `station-sim run` prints: each instrument's driver and URLs, and the control port."""
        instruments: dict[str, dict[str, str]] = {}
        for inst in self.config.instruments:
            entry = {"driver": inst.model}
            if inst.id in self.tcp:
                entry["tcp"] = self.tcp[inst.id].url
            if inst.id in self.pty:
                entry["pty"] = self.pty[inst.id].path
                entry["pty_link"] = os.path.normpath(inst.pty_link)
            instruments[inst.id] = entry
        return {
            "instruments": instruments,
            "control": self.control.address if self.control else None,
        }

    def _device(self, request: dict[str, Any]) -> PicarroSimulator:
        name = request.get("device")
        if name not in self.devices:
            raise ValueError(f"unknown device {name!r}; known: {', '.join(self.devices)}")
        return self.devices[name]

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request -> its reply (see the module docstring)."""
        if "fault" in request:
            params = {k: v for k, v in request.items() if k not in ("device", "fault", "count", "duration_s")}
            self._device(request).inject(
                str(request["fault"]), request.get("count"), request.get("duration_s"), **params
            )
            return {"ok": True}
        cmd = request.get("cmd")
        if cmd == "stats":
            names = [request["device"]] if "device" in request else list(self.devices)
            return {"ok": True, "stats": {n: self._device({"device": n}).stats() for n in names}}
        if cmd == "ledger":
            rows = self._device(request).ledger_rows(int(request.get("since_seq", 0)))
            return {"ok": True, "ledger": rows}
        if cmd == "clear_faults":
            self._device(request).clear_faults()
            return {"ok": True}
        if cmd == "endpoints":
            return {"ok": True, "endpoints": self.endpoints()}
        raise ValueError(f"unknown request {request!r}: give 'fault' or cmd stats|ledger|clear_faults|endpoints")
