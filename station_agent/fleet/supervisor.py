"""The daemon's outer loop: runs the agent and applies the configs central pushes.

A pushed config is vetted (remote_config.vet), written over the config file atomically (the
previous text kept as its version), and the agent is restarted in process: the old one stops as on
SIGTERM (valve parked, every reading and record flushed to the store, the outbox untouched), a new
one starts on the same store with the new config. Then the health check: within `[fleet]
health_check_s` every device answers, a minute closes and the broker takes messages, or the
previous config is written back and the agent restarted on it. Every step is an event to central
and a line in the station's config history.
"""

from __future__ import annotations

import queue
import threading
from datetime import timedelta
from pathlib import Path

from ghgnet.clock import Clock
from ghgnet.logs import get_logger
from ghgnet.records import Event
from ghgnet.sdnotify import SdNotifier
from station_agent.agent import Agent
from station_agent.config import StationConfigBase, load_station_config
from station_agent.fleet.config_history import ConfigHistory, write_atomically
from station_agent.fleet.remote_config import Refusal, vet


def history_for(config_path: Path, cfg: StationConfigBase) -> ConfigHistory:
    folder = cfg.fleet.history_dir or Path(config_path).parent / "config-versions"
    return ConfigHistory(Path(folder))


def health_problems(agent: Agent) -> list[str]:
    """What keeps a freshly started agent from being healthy (empty: healthy)."""
    out = [f"device {d} not answering" for d, p in [*agent.pollers.items(), *agent.device_pollers.items()]
           if not (p.health.connected and p.health.readings > 0)]
    if agent.writer.stats.minutes == 0:
        out.append("no minute closed yet")
    fw = agent.forwarder
    if fw is not None and not (fw.connected and fw.stats["published_messages"] > 0):
        out.append("forwarding not moving (broker not taking messages)")
    return out


class Supervisor:
    def __init__(self, config_path: Path, config: StationConfigBase, clock: Clock,
                 notifier: SdNotifier | None = None) -> None:
        self.path = Path(config_path)
        self.config = config
        self.clock = clock
        self.notifier = notifier
        self.log = get_logger(component="fleet")
        self.history = history_for(self.path, config)
        self.pushes: queue.Queue[bytes] = queue.Queue(maxsize=8)
        self.agent: Agent | None = None
        self._checking: tuple[int, int, object] | None = None  # (version, previous version, deadline)

    def _receive(self, payload: bytes) -> None:
        """From the forwarder's thread: hand over, never block it."""
        try:
            self.pushes.put_nowait(payload)
        except queue.Full:
            self.log.warning("config_push_dropped", why="8 pushes already waiting")

    def _start(self, cfg: StationConfigBase) -> Agent:
        agent = Agent(cfg, self.clock, self.notifier)
        agent.on_remote_config = self._receive
        agent.config_version = self.history.active()
        self.agent = agent
        agent.start()
        return agent

    def _emit(self, kind: str, severity: str, message: str, version: int, **data) -> None:
        self.log.info(kind.replace(".", "_"), version=version, message=message)
        if self.agent is not None:
            self.agent.emit(Event(self.clock.now(), kind, severity, message, None, {"version": version, **data}))

    def run(self, stop: threading.Event) -> None:
        self._start(self.config)
        unchecked = self.history.unchecked()
        if unchecked is not None:  # the daemon stopped (or died) while checking this version: check again
            version, previous = unchecked
            self._emit("config.check_resumed", "warning", f"config version {version}: health check "
                       "interrupted by a restart, checking again", version)
            self._checking = (version, previous,
                              self.clock.now() + timedelta(seconds=self.config.fleet.health_check_s))
        try:
            while not stop.wait(0.2):
                if not self.agent.writer.thread.is_alive():
                    raise RuntimeError("store writer died") from self.agent.writer._error
                self._check_health()
                try:
                    payload = self.pushes.get_nowait()
                except queue.Empty:
                    continue
                self._apply(payload)
        finally:
            if self.agent is not None:
                self.agent.shutdown()

    def _apply(self, payload: bytes) -> None:
        now = self.clock.now()
        key = self.config.fleet.central_public_key
        if key is None:
            return
        try:
            got = vet(payload, self.config.station.id, key, self.history, self.path, now)
        except Refusal as r:
            self.history.note(now, r.version, r.step, r.message)
            self._emit("config.refused", "warning", r.message, r.version, reason=r.step)
            return
        version, previous = got.envelope.version, self.history.active()
        self._emit("config.received", "info", f"config version {version} verified and valid; applying "
                   f"(was version {previous})", version)
        if not self.history.version_path(previous).exists():  # the locally installed config: kept as v0
            self.history.keep(previous, self.path.read_text())
        self.history.keep(version, got.envelope.config)
        try:
            self._switch(version, got.envelope.config, got.config, "applied",
                         f"config version {version} applied; agent restarted on it", previous)
        except Exception as exc:  # noqa: BLE001  (a config the agent cannot even start on goes back at once)
            self.history.note(self.clock.now(), version, "failed_start", repr(exc))
            self.rollback(previous, f"version {version} did not start: {exc!r}")
            return
        self._checking = (version, previous, self.clock.now() + timedelta(seconds=got.config.fleet.health_check_s))

    def _switch(self, version: int, text: str, cfg: StationConfigBase, step: str, message: str,
                previous: int | None = None) -> None:
        """Write `text` over the config file, restart the agent on `cfg`; on a start that fails,
        the caller's check rolls back (the failure is its problem list)."""
        write_atomically(self.path, text.encode())
        self.history.set_active(version)
        self.agent.shutdown()
        self.agent = None
        self.config = cfg
        self.history = history_for(self.path, cfg)
        try:
            self._start(cfg)
        except Exception as exc:  # noqa: BLE001  (a config that cannot even start is rolled back)
            self.log.error("agent_start_failed", version=version, error=repr(exc))
            if self.agent is not None:
                self.agent.shutdown()
            self.agent = None
            raise
        self.history.note(self.clock.now(), version, step, **({"previous": previous} if previous is not None else {}))
        self._emit(f"config.{step}", "info" if step == "applied" else "warning", message, version)

    def _check_health(self) -> None:
        if self._checking is None:
            return
        version, previous, deadline = self._checking
        problems = health_problems(self.agent)
        if not problems:
            self._checking = None
            self.history.note(self.clock.now(), version, "healthy")
            self._emit("config.healthy", "info", f"config version {version} healthy: devices answering, "
                       "minutes closing, forwarding moving", version)
            return
        if self.clock.now() < deadline:
            return
        self._checking = None
        why = "; ".join(problems)
        self.history.note(self.clock.now(), version, "failed_health", why)
        self._emit("config.failed_health", "error", f"config version {version} failed its health check: {why}",
                   version)
        self.rollback(previous, f"version {version} failed its health check: {why}")

    def rollback(self, previous: int, why: str) -> None:
        text = self.history.text_of(previous)
        cfg = load_station_config_text(self.path, text)
        self._switch(previous, text, cfg, "rolled_back", f"rolled back to config version {previous}: {why}")


def load_station_config_text(path: Path, text: str) -> StationConfigBase:
    """A kept version, validated where the live file is (its relative paths mean the same)."""
    cand = path.with_name(f".{path.name}.rollback")
    write_atomically(cand, text.encode())
    try:
        return load_station_config(cand)
    finally:
        cand.unlink(missing_ok=True)
