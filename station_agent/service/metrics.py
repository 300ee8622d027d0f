"""The station's local metrics endpoint: Prometheus exposition by `prometheus_client`.

`MetricsServer(figures)` serves `GET /metrics` on 127.0.0.1 from a thread of its own; each scrape
calls `figures()` once and a custom collector turns the dict it returns into metric families
through the table below. Nothing is counted on the acquisition path and no default collectors run
(a registry of our own, not prometheus_client's global one with its process and GC collectors):
the daemon pays only when it is scraped. The figures callable belongs to the agent (it knows the
writer, pollers and outbox); this module only knows names, types and help.

The format follows the scraper's Accept header (`prometheus_client.exposition.choose_encoder`):
text format 0.0.4 by default, OpenMetrics when asked for.

Figures (keys of the dict; a missing key or a None value means "unknown" and writes no sample):
    queue_depth               int            items waiting in the writer's queue
    outbox_backlog            int            records not yet acknowledged by central
    oldest_unacked_age_s      float          age of the oldest unacknowledged record, s
    disk_free_bytes           int            free bytes for the agent on the data directory's disk
    last_calibration_age_s    float          time since the last finished calibration, s
    minutes_stored            int            minute records stored since the agent started
    poll_errors               {device: int}  failed polls since start, per device
    readings                  {device: int}  readings received since start, per device
    device_connected          {device: bool} the poller holds an open link to the device
    clock_offset_s            {device: float} instrument clock minus station clock, s, where known
    watchdog_stalled          {probe: bool}  the progress watchdog sees this probe stalled
Counters (`_total`) count since the agent started; Prometheus handles the reset at a restart.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What a scraper that asks for nothing in particular gets."""


@dataclass(frozen=True)
class Family:
    """One metric family: the figure key it is read from, its exposed name, type, help and label."""

    key: str
    name: str
    kind: str  # "gauge" or "counter"
    help: str
    label: str | None = None  # the label name when the figure is a {label value: number} dict

    def __post_init__(self) -> None:
        if self.kind not in ("gauge", "counter"):
            raise ValueError(f"{self.name}: kind must be gauge or counter, not {self.kind!r}")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"{self.name}: a counter's name ends in _total")

    def metric(self, value: Any) -> Metric:
        """This family with the samples of one figure (none when the figure is None)."""
        labels = [self.label] if self.label is not None else None
        m = (CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily)(self.name, self.help, labels=labels)
        if value is None:
            return m
        if self.label is None:
            m.add_metric([], float(value))
            return m
        if not isinstance(value, Mapping):
            raise TypeError(f"figure {self.key!r} must be a dict of {self.label} -> number, got {type(value).__name__}")
        for label_value in sorted(value, key=str):
            v = value[label_value]
            if v is not None:
                m.add_metric([str(label_value)], float(v))
        return m


STATION_FAMILIES: tuple[Family, ...] = (
    Family("queue_depth", "ghgnet_writer_queue_depth", "gauge", "Items waiting in the store writer's queue."),
    Family("outbox_backlog", "ghgnet_outbox_backlog_records", "gauge",
           "Records in the outbox not yet acknowledged by central."),
    Family("oldest_unacked_age_s", "ghgnet_outbox_oldest_unacked_age_seconds", "gauge",
           "Age of the oldest record not yet acknowledged by central, in seconds."),
    Family("disk_free_bytes", "ghgnet_data_disk_free_bytes", "gauge",
           "Bytes free for the agent on the file system of the data directory."),
    Family("last_calibration_age_s", "ghgnet_last_calibration_age_seconds", "gauge",
           "Seconds since the last finished calibration."),
    Family("minutes_stored", "ghgnet_minutes_stored_total", "counter",
           "Minute records stored since the agent started."),
    Family("poll_errors", "ghgnet_poll_errors_total", "counter",
           "Failed polls (timeouts, link and protocol errors) since the agent started.", "device"),
    Family("readings", "ghgnet_readings_total", "counter",
           "Readings received from the device since the agent started.", "device"),
    Family("device_connected", "ghgnet_device_connected", "gauge",
           "1 when the poller holds an open link to the device.", "device"),
    Family("clock_offset_s", "ghgnet_clock_offset_seconds", "gauge",
           "Instrument clock minus station clock, in seconds, where the instrument reports its time.",
           "device"),
    Family("watchdog_stalled", "ghgnet_watchdog_stalled", "gauge",
           "1 when the progress watchdog sees this probe stalled (the systemd watchdog is not fed).",
           "probe"),
)


class FiguresCollector(Collector):
    """A prometheus_client collector reading the agent's figures once per scrape."""

    def __init__(self, figures: Callable[[], Mapping[str, Any]],
                 families: tuple[Family, ...] = STATION_FAMILIES) -> None:
        self.figures = figures
        self.families = families

    def collect(self) -> Iterator[Metric]:
        figures = self.figures()
        for fam in self.families:
            yield fam.metric(figures.get(fam.key))


def registry_of(figures: Callable[[], Mapping[str, Any]],
                families: tuple[Family, ...] = STATION_FAMILIES) -> CollectorRegistry:
    """A registry of its own holding only the figures' collector (no process or GC collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(figures, families))
    return registry


def render(figures: Mapping[str, Any], families: tuple[Family, ...] = STATION_FAMILIES) -> str:
    """The text format 0.0.4 exposition of one set of figures."""
    return generate_latest(registry_of(lambda: figures, families)).decode()


def disk_free_bytes(path: str | Path) -> int:
    """Bytes available to an unprivileged writer on the file system holding `path` (or its parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return int(shutil.disk_usage(p).free)


# -- the server ------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _MetricsHTTPServer
    timeout = 10  # a stuck client must not hold the single server thread for ever
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._respond(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(body=False)

    def _respond(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/metrics":
            self._send(404, "text/plain; charset=utf-8", b"not found; metrics are at /metrics\n", body)
            return
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            payload = encoder(self.server.registry)
        except Exception as exc:  # a scrape must never take the agent down; the 500 says why
            self.server.log.exception("metrics_failed", error=repr(exc))
            self._send(500, "text/plain; charset=utf-8", f"metrics unavailable: {exc!r}\n".encode(), body)
            return
        self._send(200, content_type, payload, body)

    def _send(self, code: int, ctype: str, payload: bytes, body: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        self.server.log.debug("metrics_request", client=self.client_address[0], line=format % args)


class _MetricsHTTPServer(HTTPServer):
    allow_reuse_address = True

    def __init__(self, address, registry: CollectorRegistry, log) -> None:
        self.registry = registry
        self.log = log
        super().__init__(address, _Handler)


class MetricsServer:
    """Serves `/metrics` on `host:port` (port 0: any free port, see `.port`) until `stop()`.

    Binds to the loopback address by default: the figures are for a local Prometheus or node
    exporter textfile relay, not for the network. One request at a time (not prometheus_client's
    thread per request), which is plenty for a scrape every 15 s and keeps the thread count fixed.
    """

    def __init__(
        self,
        figures: Callable[[], Mapping[str, Any]],
        log,
        port: int = 9464,
        host: str = "127.0.0.1",
        families: tuple[Family, ...] = STATION_FAMILIES,
    ) -> None:
        self.log = log.bind(component="metrics")
        self.registry = registry_of(figures, families)
        self._server = _MetricsHTTPServer((host, port), self.registry, self.log)
        self.host, self.port = self._server.server_address[:2]
        self.thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="metrics-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> None:
        self.thread.start()
        self.log.info("metrics_serving", url=self.url)

    def stop(self) -> None:
        """Stop serving and close the socket (waits for a request in progress)."""
        if self.thread.is_alive():
            self._server.shutdown()
            self.thread.join(15)
        self._server.server_close()
