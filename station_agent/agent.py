"""The station agent: wires drivers, pollers, the writer and (later) sequencer and forwarder.

`Agent(config, clock).run_until(stop)` is the daemon; `station-agent run` calls it with a stop
event set by SIGTERM/SIGINT.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any

from station_agent import __version__
from station_agent.clock import Clock
from station_agent.config import StationConfigBase
from station_agent.forwarder import Forwarder
from station_agent.logs import get_logger
from station_agent.minutes import MinuteAssembler, MinuteBin
from station_agent.poller import AnalyzerPoller, constant_stream
from station_agent.processing.minute import minute_record
from station_agent.records import Event, MinuteRecord
from station_agent.registry import load_driver
from station_agent.writer import StoreWriter


class Agent:
    def __init__(self, config: StationConfigBase, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.log = get_logger(component="agent")
        self.stop_event = threading.Event()
        self.analyzers = {a.id: a for a in config.analyzers if a.enabled}
        self.pollers: dict[str, AnalyzerPoller] = {}
        self.forwarder: Forwarder | None = None
        self.started = clock.now()
        self._state = "starting"
        self.writer = StoreWriter(
            config.storage.path,
            clock,
            MinuteAssembler(config.processing.close_after_s),
            self.make_minute,
            self.device_answering,
            self.log,
            self.state_snapshot,
            timedelta(days=config.storage.raw_retention_days),
        )

    # -- minute processing ----------------------------------------------------------------
    def make_minute(self, b: MinuteBin) -> MinuteRecord:
        times, values, ok, flushing = b.arrays()
        analyzer = self.analyzers.get(b.device)
        water = dict(getattr(analyzer, "water_correction", {}) or {})
        return minute_record(
            minute=b.minute,
            device=b.device,
            stream=b.stream,
            times=times,
            values=values,
            status_ok=ok,
            flushing=flushing,
            limits=self.config.processing,
            water=water,
        )

    def device_answering(self, device: str) -> bool:
        p = self.pollers.get(device)
        return bool(p and p.health.connected and p.faults.healthy)

    def state_snapshot(self) -> dict[str, Any]:
        devices = {}
        for dev, p in self.pollers.items():
            h = p.health
            devices[dev] = {
                "driver": p.driver.name,
                "connected": h.connected,
                "last_reading": h.last_reading.isoformat() if h.last_reading else None,
                "readings": h.readings,
                "polls": h.polls,
                "problems": h.problems,
                "faults": sorted(p.faults.open),
                "fault_totals": dict(p.faults.totals),
                "status_flags": list(h.status_flags),
            }
        return {
            "state": self._state,
            "station": self.config.station.id,
            "pid": os.getpid(),
            "version": __version__,
            "started": self.started.isoformat(),
            "now": self.clock.now().isoformat(),
            "speed": getattr(self.clock, "speed", 1.0),
            "devices": devices,
            "forwarder": (
                dict(self.forwarder.stats, connected=self.forwarder.connected, awaiting_ack=self.forwarder.awaiting)
                if self.forwarder else None
            ),
        }

    def health_details(self) -> dict[str, Any]:
        """Health figures for the status message to central."""
        fw = self.forwarder
        return {
            "devices": {
                dev: {"connected": p.health.connected, "faults": sorted(p.faults.open),
                      "last_reading": p.health.last_reading.isoformat() if p.health.last_reading else None}
                for dev, p in self.pollers.items()
            },
            "forwarder": dict(fw.stats, awaiting_ack=fw.awaiting) if fw else None,
        }

    def emit(self, event: Event) -> None:
        self.writer.submit_event(event)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self.writer.start()
        if self.config.mqtt is not None and self.config.forwarding.enabled:
            self.forwarder = Forwarder(
                self.config.station.id,
                self.config.mqtt,
                self.config.forwarding,
                self.config.storage.path,
                self.clock,
                self.writer.submit_ack,
                self.emit,
                self.log,
                self.health_details,
            )
            self.writer.on_stored = self.forwarder.notify
            self.forwarder.start()
        tag = constant_stream("inlet:ambient")
        for dev_id, cfg in self.analyzers.items():
            cls = load_driver(cfg.driver)
            driver = cls(cfg, cls.make_transport(cfg))
            poller = AnalyzerPoller(
                driver,
                self.clock,
                self.writer.submit_readings,
                self.writer.has_room,
                self.emit,
                tag,
                self.log,
                self.stop_event,
            )
            self.pollers[dev_id] = poller
        self.emit(Event(self.clock.now(), "agent.start", "info", f"station agent {__version__} started"))
        self.log.info("agent_started", devices=list(self.pollers), speed=getattr(self.clock, "speed", 1))
        for p in self.pollers.values():
            p.start()
        self._state = "running"

    def shutdown(self) -> None:
        self._state = "stopping"
        self.stop_event.set()
        for p in self.pollers.values():
            p.join(30)
        self._state = "stopped"  # the writer's last heartbeat says so
        self.emit(Event(self.clock.now(), "agent.stop", "info", "station agent stopped"))
        if self.forwarder is not None:
            self.forwarder.stop()
        self.writer.stop()
        self.log.info("agent_stopped", raw=self.writer.stats.raw, minutes=self.writer.stats.minutes)

    def run_until(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.wait(0.5):
                if not self.writer.thread.is_alive():
                    raise RuntimeError("store writer died") from self.writer._error
        finally:
            self.shutdown()
