"""The station agent: wires drivers, pollers, the engine, the writer and the forwarder.

`Agent(config, clock).run_until(stop)` is the daemon; `station-agent run` calls it with a stop
event set by SIGTERM/SIGINT. Threads: one poller per device, the engine (owns the valve), the
store writer (owns SQLite), the forwarder (owns the MQTT link). They talk through bounded queues
and the stream timeline only.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np

from drivers.reading import Reading
from drivers.registry import load_driver
from ghgnet import __version__
from ghgnet.clock import Clock
from ghgnet.logs import get_logger
from ghgnet.processing.minute_record import apply_calibration, minute_record
from ghgnet.records import FLAG_INVALID, REASONS, Event, MinuteRecord, minute_from_row, set_aside_retried_event
from ghgnet.sdnotify import SdNotifier
from ghgnet.timeutil import iso_utc, parse_utc
from station_agent.acquisition.flux_recorder import FluxRecorder
from station_agent.acquisition.poller import AnalyzerPoller, DevicePoller, Environment, constant_stream
from station_agent.config import StationConfigBase
from station_agent.emission.worker import EmissionWorker
from station_agent.fleet.inventory import declared_pressure, inventory_changes, pressure_readings, station_inventory
from station_agent.forwarding.forwarder import Forwarder
from station_agent.forwarding.hj212_uplink import Hj212Uplinks
from station_agent.forwarding.raw_upload import RawUploader
from station_agent.processing.minute_bins import AuxiliaryMinutes, MinuteAssembler, MinuteBin
from station_agent.sequencing.engine import Engine, RunRecord
from station_agent.sequencing.sampling_config import CylinderConfig
from station_agent.sequencing.timeline import StreamTimeline
from station_agent.sequencing.valve_train import ValveTrain
from station_agent.service.clock_sync import ClockSyncReader
from station_agent.service.control import ControlServer
from station_agent.service.metrics import MetricsServer, disk_free_bytes
from station_agent.service.requests import (  # noqa: F401  (MAX_REASON: the limit, for the tests)
    MAX_REASON,
    AssignRequest,
    CalibrateRequest,
    CylinderAddRequest,
    CylinderRetireRequest,
    EventsRequest,
    GotoRequest,
    MaintenanceRequest,
    RecalibrateRequest,
    SetAsideListRequest,
    SetAsideRetryRequest,
    StatusRequest,
    TailRequest,
    parse_request,
)
from station_agent.service.watchdog import ProgressWatchdog, forwarder_probe, poller_probe, writer_probe
from station_agent.storage.calibration_results import CalibrationBook
from station_agent.storage.store import StationStore, StoreError
from station_agent.storage.writer import StoreWriter

DEFAULT_STREAM = "inlet:ambient"

MAX_ENVIRONMENT_AGE_S = 600.0
"""An auxiliary reading older than this (simulated seconds) is not pushed to an analyzer."""

def read_engine_state(path) -> dict[str, Any] | None:
    """The engine state the last run persisted, read before the writer opens the database."""
    try:
        store = StationStore(path, read_only=True)
    except StoreError:
        return None
    try:
        got = store.get_state("engine")
        return got[0] if got else None
    finally:
        store.close()


def retry_set_aside(store: StationStore, seqs: list[int] | None, now) -> list[int]:
    """Put set-aside records (all when `seqs` is None) back in the outbox, with an event."""
    return store.retry_set_aside(seqs, lambda back: set_aside_retried_event(back, now))


class Agent:
    def __init__(self, config: StationConfigBase, clock: Clock, notifier: SdNotifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or SdNotifier(environ={})
        self.watchdog: ProgressWatchdog | None = None
        self.metrics: MetricsServer | None = None
        self.clock = clock
        self.log = get_logger(component="agent")
        self.stop_event = threading.Event()
        self.analyzers = {a.id: a for a in config.analyzers if a.enabled}
        self.valves = {v.id: v for v in getattr(config, "valves", [])}
        self.aux = {d.id: d for d in getattr(config, "devices", []) if d.enabled}
        self.environments = {a: self.environment_for(cfg) for a, cfg in self.analyzers.items()}
        # `[processing] auxiliary`: the auxiliary devices' minute means each analyzer minute carries
        self.aux_minutes = AuxiliaryMinutes(config.processing.auxiliary)
        self.pollers: dict[str, AnalyzerPoller] = {}
        self.device_pollers: dict[str, DevicePoller] = {}
        self.forwarder: Forwarder | None = None
        self.raw_upload: RawUploader | None = None  # [forwarding.raw]: the raw readings archived at central
        self.clock_sync = ClockSyncReader()  # the PC's NTP state, for the status to central
        self.inventory: dict[str, Any] | None = None  # recorded when the store opens (station_agent/fleet/inventory)
        self.config_version: int = 0  # the pushed version running (0: installed locally); set by the supervisor
        self.on_remote_config = None  # set by station_agent.fleet.supervisor: central's pushed configs go there
        self.control: ControlServer | None = None
        self.engine: Engine | None = None
        self.timeline: StreamTimeline | None = StreamTimeline() if config.sampling else None
        self.started = clock.now()
        self._state = "starting"
        self.on_valve = self._on_valve(config)
        self.book = CalibrationBook(config.sampling, [a for a in self.analyzers if a in self.on_valve],
                                    self._emit_in_writer, self.log,
                                    self.analyzer_clock_offset)
        self.writer = StoreWriter(
            config.storage.path,
            clock,
            MinuteAssembler(config.processing.close_after_s),
            self.make_minute,
            self.log,
            self.state_snapshot,
            timedelta(days=config.storage.raw_retention_days),
            disk_floor_bytes=config.storage.disk_floor_mb * 1e6,
            quota_bytes=config.storage.quota_mb * 1e6 if config.storage.quota_mb else None,
        )
        self.emission = EmissionWorker(config.cems, self.log) if config.cems is not None else None
        self.flux: FluxRecorder | None = None
        if config.flux is not None:  # an eddy-covariance site: its 10-20 Hz records bypass the raw table
            self.flux = FluxRecorder(config.flux, self.writer.submit_call, clock.now, self.log)
            self.writer.highrate = self.flux
        self.writer.on_open = self._writer_opened
        self.writer.on_tick = self._writer_tick
        self.uplinks = Hj212Uplinks([u for u in config.uplinks if u.enabled], config.storage.path, clock,
                                    self.writer.submit_call, self.log, self.emit)

    # -- in the writer thread ---------------------------------------------------------------
    def _emit_in_writer(self, store: StationStore, event: Event) -> None:
        store.insert_event(event)
        self.log.bind(device=event.device).info("event", kind=event.kind, message=event.message)

    def _writer_opened(self, store: StationStore) -> None:
        now = self.clock.now()
        stored = {c["id"]: c for c in store.cylinders()}
        for cyl in self.config.cylinders:
            declared = cyl.model_dump()
            store.upsert_cylinder(declared | {"pressure_bar": declared_pressure(stored.get(cyl.id), declared)}, now,
                                  keep_assignment=True)
        for c in store.cylinders():
            if c["pressure_bar"] is not None and c["pressure_bar"] < c["low_pressure_bar"]:
                store.insert_event(Event(now, "cylinder.low_pressure", "warning",
                                         f"cylinder {c['id']} at {c['pressure_bar']:g} bar (warn below "
                                         f"{c['low_pressure_bar']:g})", None, {"cylinder": c["id"]}))
        self.book.load(store)
        self._restore_auxiliary(store, now)
        if self.emission is not None:
            self.emission.open(store)
        self._record_inventory(store, now)

    def _record_inventory(self, store: StationStore, now) -> None:
        """Each difference from the inventory last recorded is an event for central's registry."""
        self.inventory = station_inventory(self.config.all_devices(), store.cylinders(), __version__,
                                           self.config_version)
        got = store.get_state("inventory")
        old = got[0] if got else None
        for kind, message, device, data in [*inventory_changes(old, self.inventory),
                                            *pressure_readings(old, self.inventory)]:
            store.insert_event(Event(now, kind, "info", message, device, data))
        store.put_state("inventory", self.inventory, now)

    def _writer_tick(self, store: StationStore) -> None:
        self.uplinks.pack(store)
        while self.writer.pending_runs:
            self.book.add_run(self.writer.pending_runs.pop(0))
        if self.book.pending:
            self.book.process(store, self.writer.assembler.closed_until, self.clock.now())
        if self.emission is not None:
            before = sum(self.emission.stored.values())
            self.emission.tick(store, self.clock.now())
            if sum(self.emission.stored.values()) > before:
                self.writer.on_stored()

    def make_minute(self, b: MinuteBin) -> MinuteRecord:
        times, values, ok, flushing = b.arrays()
        conditions = sorted({c for r in b.readings for c in r.conditions})
        if conditions:
            flushing = flushing | np.fromiter((bool(r.conditions) for r in b.readings), bool, len(b.readings))
        analyzer = self.analyzers.get(b.device)
        water = dict(getattr(analyzer, "water_correction", {}) or {})
        rec = minute_record(
            minute=b.minute, device=b.device, stream=b.stream, times=times, values=values,
            status_ok=ok, flushing=flushing, limits=self.config.processing, water=water,
        )
        if conditions:
            reasons = set(rec.reasons) | set(conditions)
            rec = replace(rec, flag=FLAG_INVALID, reasons=tuple(r for r in REASONS if r in reasons))
        # an analyzer the valve does not feed sees no cylinder: its minutes go out `uncalibrated`
        cal = self.book.in_force(b.device, b.minute) if b.device in self.on_valve else None
        rec = apply_calibration(rec, cal.fits if cal else None, cal.id if cal else None,
                                water=water or None, water_relative_u=self.config.processing.water_u_relative)
        aux = self.aux_minutes.means(b.minute) if analyzer is not None and self.aux_minutes else None
        return replace(rec, diagnostics={**rec.diagnostics, **aux}) if aux else rec

    def _submit_auxiliary(self, readings: list) -> bool:
        """An auxiliary device's readings: counted for the analyzers' minutes, then to the store."""
        self.aux_minutes.add(readings)
        return self.writer.submit_readings(readings)

    def _restore_auxiliary(self, store: StationStore, now) -> None:
        """The auxiliary readings of the minutes still open at the last stop, from the raw table."""
        for device in {s.partition(":")[0] for s in self.aux_minutes.sources}:
            self.aux_minutes.add(Reading(parse_utc(r["time"]), device, {k: v for k, v in r["values"].items()
                                                                        if v is not None}, status_ok=r["status_ok"])
                                 for r in store.raw_rows(now - timedelta(hours=1), now + timedelta(days=1), device))

    # -- shared views ---------------------------------------------------------------------------
    def device_answering(self, device: str) -> bool:
        p = self.pollers.get(device)
        return bool(p and p.health.connected and p.faults.healthy)

    def analyzer_clock_offset(self, device: str) -> float:
        """Analyzer clock minus agent clock, seconds (0 until estimated)."""
        p = self.pollers.get(device)
        return p.offset.offset_s if p else 0.0

    def newest_stored(self, device: str):
        """Time of `device`'s newest raw reading in the store (after everything queued before the
        call is stored), or None."""
        got = self.writer.call_sync(lambda store: store.newest_raw_time(device))
        return parse_utc(got) if got else None

    def interlock_value(self, device: str, quantity: str):
        p = self.device_pollers.get(device)
        return p.value(quantity) if p else None

    def environment_for(self, cfg) -> Environment | None:
        """What an analyzer compensates with: its config's `compensation` table (name ->
        "device:quantity" of a [[devices]] entry) read from the latest auxiliary readings."""
        sources: dict[str, str] = dict(getattr(cfg, "compensation", None) or {})
        if not sources:
            return None
        unknown = sorted({s.partition(":")[0] for s in sources.values()} - set(self.aux))
        if unknown:
            raise ValueError(f"analyzer {cfg.id}: compensation source device(s) {unknown} are not among the "
                             f"enabled [[devices]]: {sorted(self.aux) or '(none)'}")

        def values() -> dict[str, float]:
            out: dict[str, float] = {}
            for name, source in sources.items():
                device, _, quantity = source.partition(":")
                got = self.interlock_value(device, quantity)
                if got is not None and got[1] <= MAX_ENVIRONMENT_AGE_S:
                    out[name] = got[0]
            return out

        return values

    def state_snapshot(self) -> dict[str, Any]:
        devices = {}
        for dev, p in [*self.pollers.items(), *self.device_pollers.items()]:
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
                "last_values": {k: (None if v != v else v) for k, v in (h.last_values or {}).items()},
                "clock_offset_s": round(p.offset.offset_s, 3) if isinstance(p, AnalyzerPoller) and p.offset.known
                else None,
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
            "engine": self.engine.status() if self.engine else None,
            "forwarder": (
                dict(self.forwarder.stats, connected=self.forwarder.connected, awaiting_ack=self.forwarder.awaiting)
                if self.forwarder else None
            ),
            "uplinks": self.uplinks.status(),
            "raw_upload": self.raw_upload.status() if self.raw_upload else None,
        }

    def metrics_figures(self) -> dict[str, Any]:
        """The figures of the metrics endpoint and of the status message to central."""
        now = self.clock.now()
        ws = self.writer.stats
        oldest = (now - parse_utc(ws.oldest_unacked)).total_seconds() if ws.oldest_unacked else 0.0
        pollers = [*self.pollers.items(), *self.device_pollers.items()]
        last_cal = None
        for dev in self.analyzers:
            cal = self.book.in_force(dev, now)
            if cal is not None:
                age = (now - cal.end).total_seconds()
                last_cal = age if last_cal is None else min(last_cal, age)
        return {
            "queue_depth": self.writer.queue.qsize(),
            "outbox_backlog": ws.outbox,
            "oldest_unacked_age_s": max(0.0, oldest),
            "disk_free_bytes": disk_free_bytes(self.config.storage.path),
            "last_calibration_age_s": last_cal,
            "minutes_stored": ws.minutes,
            "poll_errors": {d: sum(v for k, v in p.faults.totals.items() if k != "backpressure") for d, p in pollers},
            "readings": {d: p.health.readings for d, p in pollers},
            "device_connected": {d: p.health.connected for d, p in pollers},
            "clock_offset_s": {d: p.offset.offset_s for d, p in self.pollers.items() if p.offset.known},
            "watchdog_stalled": {s.name: s.stalled for s in self.watchdog.states()} if self.watchdog else {},
            "disk_alarm": self.writer.disk_alarm,
        }

    def health_details(self) -> dict[str, Any]:
        """Health figures for the status message to central."""
        fw = self.forwarder
        eng = self.engine.status() if self.engine else None
        return {
            "metrics": self.metrics_figures(),
            "devices": {
                dev: {"connected": p.health.connected, "faults": sorted(p.faults.open),
                      "last_reading": p.health.last_reading.isoformat() if p.health.last_reading else None}
                for dev, p in [*self.pollers.items(), *self.device_pollers.items()]
            },
            "stream": eng["stream"] if eng else DEFAULT_STREAM,
            "maintenance": bool(eng and eng["maintenance"]),
            "forwarder": dict(fw.stats, awaiting_ack=fw.awaiting) if fw else None,
            "clock_sync": self.clock_sync().as_dict(),
            "inventory": self.inventory,
            "config_version": self.config_version,
        }

    def emit(self, event: Event) -> None:
        self.writer.submit_event(event)

    # -- the control socket ----------------------------------------------------------------------
    def handle_control(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            r = parse_request(req)
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        if isinstance(r, StatusRequest):
            return {"ok": True, "state": self.state_snapshot()}
        if isinstance(r, (MaintenanceRequest, GotoRequest, CalibrateRequest, AssignRequest)):
            if self.engine is None:
                return {"ok": False, "error": "this station has no [sampling] sequence (no valve to drive)"}
            ok, msg = self.engine.request(r.cmd, **r.model_dump(exclude={"cmd"}, exclude_unset=True))
            return {"ok": ok, "message": msg} if ok else {"ok": False, "error": msg}
        if isinstance(r, CylinderAddRequest):
            cyl = CylinderConfig.model_validate(r.cylinder)  # the control server reports a ValidationError
            self.writer.call_sync(lambda store: (store.upsert_cylinder(cyl.model_dump(), self.clock.now()),
                                                 self._record_inventory(store, self.clock.now())))
            return {"ok": True, "message": f"cylinder {cyl.id} stored"}
        if isinstance(r, CylinderRetireRequest):
            done = self.writer.call_sync(lambda store: (store.retire_cylinder(r.id, self.clock.now()),
                                                        self._record_inventory(store, self.clock.now()))[0])
            return {"ok": True, "message": "retired"} if done else {"ok": False, "error": f"no active cylinder {r.id!r}"}
        if isinstance(r, RecalibrateRequest):
            start, end = parse_utc(r.from_), parse_utc(r.to)
            n = self.writer.call_sync(lambda store: self.recalibrate(store, start, end), timeout=3600)
            return {"ok": True, "message": f"{n} minute records reprocessed", "count": n}
        if isinstance(r, EventsRequest):
            return {"ok": True, "events": self.writer.call_sync(lambda store: store.event_rows(r.limit))}
        if isinstance(r, TailRequest):
            return {"ok": True, "minutes": self.writer.call_sync(lambda store: store.minutes_after(r.after_seq))}
        if isinstance(r, SetAsideListRequest):
            rows = self.writer.call_sync(lambda store: store.set_aside_rows(r.seqs, with_payload=r.records))
            return {"ok": True, "set_aside": rows}
        if isinstance(r, SetAsideRetryRequest):
            back = self.writer.call_sync(lambda store: retry_set_aside(store, r.seqs, self.clock.now()))
            if self.forwarder is not None:
                self.forwarder.rewind(back)
            return {"ok": True, "message": f"{len(back)} set-aside record(s) back in the outbox", "seqs": back}
        return {"ok": False, "error": f"command {r.cmd!r} is not handled"}

    def recalibrate(self, store: StationStore, start, end) -> int:
        """Reprocess stored minutes with coefficients interpolated between the bracketing
        calibrations; each changed minute gets a new seq and goes to central again."""
        n = 0
        now = self.clock.now()
        for row in list(store.minute_rows(start, end)):
            got = self.book.reprocessed_coefficients(row["device"], parse_utc(row["time"]))
            rec = minute_from_row(row)
            new = apply_calibration(rec, got[0] if got else None, got[1] if got else None)
            if new != rec:
                store.replace_minute(row["seq"], new, now)
                n += 1
        store.insert_event(Event(now, "recalibrated", "info",
                                 f"{n} minute records reprocessed from {iso_utc(start)} to {iso_utc(end)}"))
        return n

    # -- lifecycle --------------------------------------------------------------------------------
    @staticmethod
    def _on_valve(config: StationConfigBase) -> frozenset[str]:
        """The analyzers on the valve's manifold (none without a sampling sequence)."""
        if config.sampling is None:
            return frozenset()
        if config.sampling.analyzers is None:
            return frozenset(a.id for a in config.analyzers)
        return frozenset(config.sampling.analyzers)

    def _tagger(self, analyzer: str):
        if self.timeline is not None and analyzer in self.on_valve:
            return self.timeline.tag
        own = self.config.sampling.own_lines.get(analyzer) if self.config.sampling else None
        return constant_stream(f"inlet:{own}" if own else DEFAULT_STREAM)

    def start(self) -> None:
        restored = read_engine_state(self.config.storage.path) if self.config.sampling else None
        self.writer.start()
        if self.flux is not None:
            self.flux.start()
        if self.config.mqtt is not None and self.config.forwarding.enabled:
            self.forwarder = Forwarder(
                self.config.station.id, self.config.mqtt, self.config.forwarding, self.config.storage.path,
                self.clock, self.writer.submit_ack, self.emit, self.log, self.health_details,
                set_aside=self.writer.submit_set_aside,
            )
            self.writer.on_stored = self.forwarder.notify
            self.forwarder.on_config = self.on_remote_config if self.config.fleet.central_public_key else None
            if self.config.forwarding.raw.enabled:
                self.raw_upload = RawUploader(
                    self.config.station.id, self.config.forwarding.raw, self.forwarder, self.config.storage.path,
                    self.clock, self._advance_raw_cursor, self.emit, self.log,
                    devices=[*self.analyzers, *self.aux], ack_timeout_s=self.config.forwarding.ack_timeout_s,
                    denied_backoff_s=self.config.forwarding.denied_backoff_s)
                self.writer.keep_unarchived_raw = True
            self.forwarder.start()
            if self.raw_upload is not None:
                self.raw_upload.start()
        self.uplinks.start()
        for dev_id, cfg in self.analyzers.items():
            cls = load_driver(cfg.driver)
            driver = cls(cfg, cls.make_transport(cfg))
            self.pollers[dev_id] = AnalyzerPoller(
                driver, self.clock, self.writer.submit_readings, self.writer.has_room,
                self.emit, self._tagger(dev_id), self.log, self.stop_event,
                environment=self.environments[dev_id], newest_stored=self.newest_stored,
            )
        for dev_id, cfg in self.aux.items():
            cls = load_driver(cfg.driver)
            self.device_pollers[dev_id] = DevicePoller(
                cls(cfg, cls.make_transport(cfg)), self.clock, self._submit_auxiliary, self.emit, self.log,
                self.stop_event,
            )
        if self.config.sampling is not None:
            self.engine = Engine(
                self.config.sampling, self._sampling_valve(), self.clock, self.timeline,
                self.emit, self.log, self.writer.submit_engine_state, restored, self._run_finished,
                needs_calibration=lambda: not self.book.has_any(), interlock_value=self.interlock_value,
            )
        self.emit(Event(self.clock.now(), "agent.start", "info", f"station agent {__version__} started"))
        self.log.info("agent_started", devices=[*self.pollers, *self.device_pollers],
                      speed=getattr(self.clock, "speed", 1))
        if self.engine is not None:
            self.engine.start()
        for p in [*self.pollers.values(), *self.device_pollers.values()]:
            p.start()
        self.control = ControlServer(self.config.control_socket(), self.handle_control, self.log)
        self.control.start()
        if self.config.metrics.enabled:
            self.metrics = MetricsServer(self.metrics_figures, self.log, self.config.metrics.port,
                                         self.config.metrics.host)
            self.metrics.start()
        probes = [poller_probe(p, max(300.0, 10 * p.driver.config.poll_interval_s))
                  for p in [*self.pollers.values(), *self.device_pollers.values()]]
        probes.append(writer_probe(self.writer, 120.0))
        if self.forwarder is not None:
            probes.append(forwarder_probe(self.forwarder, lambda: self.writer.stats.outbox, 900.0))
        self.watchdog = ProgressWatchdog(self.notifier, self.clock, probes, self.log)
        self.watchdog.start()
        self.notifier.ready(status=f"measuring: {len(self.pollers)} analyzer(s)")
        self._state = "running"

    def _sampling_valve(self):
        """The valve the engine drives: the one configured, or the train of valves in series."""
        drivers = []
        for vid in self.config.sampling.valve_ids():
            vcfg = self.valves[vid]
            vcls = load_driver(vcfg.driver)
            drivers.append(vcls(vcfg, vcls.make_transport(vcfg)))
        if isinstance(self.config.sampling.valve, str):
            return drivers[0]
        return ValveTrain(drivers, {s.port: s.positions for s in self.config.sampling.streams})

    def _advance_raw_cursor(self, device: str, until: str) -> None:
        """Central holds `device`'s raw readings before `until`: the writer moves its cursor."""
        self.writer.submit_call(lambda store: store.advance_raw_cursor(device, until, self.clock.now()))

    def _run_finished(self, run: RunRecord) -> None:
        self.writer.submit_run(run)

    def shutdown(self) -> None:
        self._state = "stopping"
        self.notifier.stopping("parking the valve and flushing")
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.metrics is not None:
            self.metrics.stop()
        self.stop_event.set()
        if self.control is not None:
            self.control.stop()
        if self.engine is not None:
            self.engine.stop()  # parks the valve on the safe stream
        for p in [*self.pollers.values(), *self.device_pollers.values()]:
            p.join(30)
        self._state = "stopped"  # the writer's last heartbeat says so
        if self.flux is not None:  # the periods already closed become records before the writer stops
            self.flux.stop()
        self.emit(Event(self.clock.now(), "agent.stop", "info", "station agent stopped"))
        if self.raw_upload is not None:
            self.raw_upload.stop()
        if self.forwarder is not None:
            try:  # a barrier: everything queued so far (the stop event too) is in the outbox first
                self.writer.call_sync(lambda store: None, timeout=60)
            except (TimeoutError, RuntimeError) as exc:
                self.log.warning("writer_not_flushed_before_forwarder_stop", error=repr(exc))
            self.forwarder.stop()
        self.uplinks.stop()
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
