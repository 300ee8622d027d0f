"""Central's Prometheus metrics (prometheus_client), served on `[metrics] host:port` by
`central-receiver run` (off unless `[metrics] enabled`).

A collector reads the receiver's figures at each scrape (no bookkeeping on the ingest path):
its counters (`Receiver.stats`), its queue, the MQTT link, the aggregation and alarm threads, what
the last alarm evaluation saw (active alarms, unresolved dead letters) and the progress watchdog.
Counters count since the receiver started; Prometheus handles the reset at a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("received", "ghgnet_central_messages_received", "MQTT messages received."),
    ("messages_handled", "ghgnet_central_messages_handled", "MQTT messages stored, found duplicate or dead-lettered."),
    ("records_new", "ghgnet_central_records_stored", "Records stored (new)."),
    ("records_duplicate", "ghgnet_central_records_duplicate", "Records received again and found held already."),
    ("records_dead_lettered", "ghgnet_central_records_dead_lettered", "Records refused into the dead letters."),
    ("messages_dead_lettered", "ghgnet_central_messages_dead_lettered", "Whole messages refused into the dead letters."),
    ("acks_sent", "ghgnet_central_acks_sent", "Acks published to stations."),
    ("acks_refused", "ghgnet_central_acks_refused", "Acks the broker refused (ACL)."),
    ("store_retries", "ghgnet_central_store_retries", "Storage attempts retried after a transient error."),
    ("disconnects", "ghgnet_central_mqtt_disconnects", "Unexpected disconnections from the broker."),
)
"""(key of Receiver.stats, metric name without _total, help)."""


class ReceiverCollector(Collector):
    def __init__(self, receiver: Any, watchdog: Any = None) -> None:
        self.receiver = receiver
        self.watchdog = watchdog

    def collect(self) -> Iterator[Metric]:
        r = self.receiver
        stats = dict(r.stats)
        for key, name, doc in COUNTERS:
            yield CounterMetricFamily(name, doc, value=stats.get(key, 0))
        yield GaugeMetricFamily("ghgnet_central_ingest_queue_depth", "Messages waiting between MQTT and storage.",
                                value=r.queue_depth)
        yield GaugeMetricFamily("ghgnet_central_mqtt_connected", "1 while connected to the broker.",
                                value=int(r.connected.is_set()))
        agg = r.aggregator
        if agg is not None:
            yield CounterMetricFamily("ghgnet_central_aggregation_passes", "Hourly aggregation passes.",
                                      value=agg.passes)
            yield CounterMetricFamily("ghgnet_central_aggregation_errors", "Hourly aggregation passes that failed.",
                                      value=agg.errors)
        alarms = r.alarms
        if alarms is not None:
            ev = alarms.evaluator
            yield CounterMetricFamily("ghgnet_central_alarm_evaluations", "Alarm rule evaluation passes.",
                                      value=ev.passes)
            if ev.last_active is not None:
                g = GaugeMetricFamily("ghgnet_central_alarms_active", "Alarms open or acknowledged, per severity.",
                                      labels=["severity"])
                for severity, n in sorted(ev.last_active.items()):
                    g.add_metric([severity], n)
                yield g
            if ev.last_unresolved_dead_letters is not None:
                yield GaugeMetricFamily("ghgnet_central_dead_letters_unresolved", "Dead letters not resolved.",
                                        value=ev.last_unresolved_dead_letters)
            sent = CounterMetricFamily("ghgnet_central_alarm_notifications", "Alarm notifications, by channel "
                                       "and result.", labels=["channel", "result"])
            st = alarms.notifier.stats
            for channel in ("email", "webhook"):
                for result in ("sent", "failed"):
                    sent.add_metric([channel, result], st.get(f"{channel}s_{result}", 0))
            sent.add_metric(["queue", "dropped"], st.get("dropped", 0))
            yield sent
        if self.watchdog is not None:
            g = GaugeMetricFamily("ghgnet_central_watchdog_stalled",
                                  "1 when the progress watchdog sees this probe stalled.", labels=["probe"])
            for s in self.watchdog.states():
                g.add_metric([s.name], int(s.stalled))
            yield g


def serve_metrics(receiver: Any, host: str, port: int, watchdog: Any = None):
    """Serve /metrics from a thread; returns (server, thread): `server.shutdown()` stops it."""
    registry = CollectorRegistry()
    registry.register(ReceiverCollector(receiver, watchdog))
    return start_http_server(port, addr=host, registry=registry)
