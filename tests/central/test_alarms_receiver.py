"""The receiver evaluates the alarm rules on central's clock (a manual clock here) and serves its
Prometheus metrics: a real mosquitto, a station's status, then simulated silence."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families
from support.central import central_config
from support.mqtt import TestStation
from support.wait import wait_until

from central.receiver import Receiver
from central.store import open_store
from ghgnet.clock import ManualClock
from ghgnet.wire import StatusMessage, encode_status


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_silence_raises_station_down_and_the_metrics_show_it(mosquitto, tmp_path):
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(t0)
    db = tmp_path / "central.sqlite"
    cfg = central_config(mosquitto, db, alarms={"interval_s": 0.1, "rules": [
        {"kind": "station_down", "raise_at": 300, "clear_at": 120, "severity": "critical"}]},
        metrics={"enabled": True, "port": 0})
    receiver = Receiver(cfg, now=clock.now).start()
    station = TestStation(mosquitto, "st-a")
    try:
        assert receiver.subscribed.wait(10)
        status = StatusMessage(station="st-a", state="up", time=t0, backlog=0, agent_version="t", interval_s=60.0)
        station.publish("status", encode_status(status))
        wait_until(lambda: receiver.stats["messages_handled"] >= 1, timeout_s=20)
        evaluated = receiver.alarms.evaluator.passes
        wait_until(lambda: receiver.alarms.evaluator.passes > evaluated + 2, timeout_s=20)
        reader = open_store("sqlite", path=db)
        try:
            assert reader.alarm_list() == []
            clock.advance(400)  # five minutes of silence and more
            wait_until(lambda: reader.alarm_list(state="open"), timeout_s=20)
            (alarm,) = reader.alarm_list()
            assert (alarm.rule, alarm.station, alarm.severity) == ("station_down", "st-a", "critical")
        finally:
            reader.close()
        server, _ = receiver.metrics_server
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        wait_until(lambda: _scrape(url).get(("ghgnet_central_alarms_active", (("severity", "critical"),))) == 1,
                   timeout_s=20)
        m = _scrape(url)
        assert m[("ghgnet_central_messages_received_total", ())] >= 1
        assert m[("ghgnet_central_messages_handled_total", ())] >= 1
        assert m[("ghgnet_central_mqtt_connected", ())] == 1
        assert m[("ghgnet_central_ingest_queue_depth", ())] == 0
        assert m[("ghgnet_central_alarm_evaluations_total", ())] >= 3
        assert m[("ghgnet_central_watchdog_stalled", (("probe", "ingest"),))] == 0
        assert m[("ghgnet_central_watchdog_stalled", (("probe", "alarms"),))] == 0
    finally:
        station.close()
        receiver.stop()
