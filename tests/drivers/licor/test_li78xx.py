"""Expected-communication tests of the LI-COR LI-7810 / LI-7815 / LI-7820 drivers, on a real broker.

STYLE.md's `expected_protocol` scripts the exact bytes of a line-based serial driver. These
analyzers are not polled over a byte stream: they publish to their own MQTT broker, and paho frames
the packets, so scripting bytes at the driver would test paho and a mock broker would test nothing
real. The equivalent contract here is at the MQTT message level, on a real mosquitto process: what
the driver subscribes to (asserted on the subscription, and by a message on another topic that
never arrives), and exact messages published in (topic and payload bytes) giving exact readings out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from support.wait import wait_until

from drivers.base import PollResult
from drivers.licor.li78xx import LI7810, LI7815, LI7820, LicorDiag, MqttSubscription, topics
from drivers.reading import Reading
from drivers.registry import load_driver
from drivers.testing import check_driver_conventions
from drivers.transport import TransportError
from simulators.broker import MosquittoBroker

CONC = "licor/niobrara/output/concentration"
DIAG = "licor/niobrara/output/diagnostics"
T0 = 1772323201  # 2026-03-01T00:00:01Z


class Publisher:
    """The analyzer's side: publishes exact payloads to the broker."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="analyzer-under-test")
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert wait_until(self.client.is_connected)

    def send(self, topic: str, payload: bytes | dict, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mosquitto) -> Iterator[Publisher]:
    p = Publisher(mosquitto)
    yield p
    p.close()


def open_driver(cls, broker: MosquittoBroker, **fields):
    config = cls.Config(id="licor-1", url=f"mqtt://127.0.0.1:{broker.port}", **fields)
    driver = cls(config, cls.make_transport(config))
    driver.open()
    assert wait_until(lambda: driver.transport.subscribed)
    time.sleep(0.05)  # the SUBACK: messages published before it are not for this subscriber
    return driver


def poll_after(driver, publish: Callable[[], None], n: int) -> PollResult:
    """Publish, wait (the test's wait, never the driver's) until `n` messages are queued, poll."""
    publish()
    assert wait_until(lambda: driver.transport.fetch() >= n), driver.transport.fetch()
    return driver.poll()


def record(seconds=T0, nanos=560526132, diag=0, **species) -> dict:
    return {"Concentration": {"SECONDS": seconds, "NANOSECONDS": nanos, "NDX": 74125, "DIAG": diag, "REMARK": "",
                              "H2O": 11476.088, **species, "CAVITY_P": 39.8265, "CAVITY_T": 55.0003,
                              "RING_DOWN_TIME": 38.4517, "INPUT_VOLTAGE": 14.2748, "CHK": 93}}


def test_the_driver_subscribes_to_the_four_output_topics_and_nothing_else(mosquitto, publisher):
    driver = open_driver(LI7820, mosquitto)
    try:
        assert driver.transport.subscribed == [CONC, CONC + "/units", DIAG, DIAG + "/units"]
        assert driver.topics == topics("licor/niobrara")
        result = poll_after(driver, lambda: [publisher.send("licor/niobrara/system/log_remark", b"flask 3"),
                                             publisher.send(CONC, record(N2O=347.71262))], 1)
        assert [r.values["n2o_dry"] for r in result.readings] == [347.71262]
        assert result.problems == []  # the remark topic never reached the driver
    finally:
        driver.close()


def test_exact_messages_in_give_exact_readings_out(mosquitto, publisher):
    driver = open_driver(LI7820, mosquitto)
    try:
        def send():
            publisher.send(CONC, record(N2O=347.71262))
            publisher.send(DIAG, {"Diagnostics": {"SECONDS": T0, "NANOSECONDS": 0, "DIAG": 0, "CAVITY_P": 39.83,
                                                  "THERMAL_ENCLOSURE_T": 54.4998}})
            publisher.send(CONC, record(seconds=T0 + 1, nanos=560526132, N2O=[347.39243, 1]))
        result = poll_after(driver, send, 3)
        assert result.problems == []
        common = {"h2o": 1.1476088, "cell_pressure": 398.265, "cell_temp": 55.0003, "ring_down_time": 38.4517,
                  "input_voltage": 14.2748}
        assert result.readings == [
            Reading(datetime(2026, 3, 1, 0, 0, 1, 560526, tzinfo=UTC), "licor-1", {"n2o_dry": 347.71262, **common},
                    status=0, status_ok=True, status_flags=()),
            Reading(datetime(2026, 3, 1, 0, 0, 2, 560526, tzinfo=UTC), "licor-1", {"n2o_dry": 347.39243, **common},
                    status=0, status_ok=True, status_flags=()),
        ]
        assert driver.latest_diagnostics == {"time": "2026-03-01T00:00:01Z", "diag": 0, "diag_ok": True,
                                             "diag_flags": [], "cell_pressure": 398.3, "enclosure_temp": 54.4998}
    finally:
        driver.close()


def test_li7810_reads_co2_and_ch4_and_li7815_only_co2(mosquitto, publisher):
    for cls, expected in ((LI7810, {"co2_dry": 520.82611, "ch4_dry": 2094.7051}), (LI7815, {"co2_dry": 520.82611})):
        driver = open_driver(cls, mosquitto)
        try:
            result = poll_after(driver, lambda: publisher.send(CONC, record(CO2=520.82611, CH4=2094.7051)), 1)
            got = {k: v for k, v in result.readings[0].values.items() if k.endswith("_dry")}
            assert got == expected
        finally:
            driver.close()


def test_a_units_message_changes_the_conversion(mosquitto, publisher):
    driver = open_driver(LI7810, mosquitto)
    try:
        def send():
            publisher.send(CONC + "/units", {"Concentration": {"H2O": "mmol/mol", "CH4": "ppm", "CO2": "ppm"}})
            publisher.send(CONC, record(CO2=420.0, CH4=2.0))
        result = poll_after(driver, send, 2)
        assert result.readings[0].values["ch4_dry"] == 2000.0
        assert result.readings[0].values["h2o"] == pytest.approx(1147.6088)  # 11476 mmol/mol is 1147.6 %
        result = poll_after(driver, lambda: [publisher.send(CONC + "/units", {"Concentration": {"CO2": "furlongs"}}),
                                             publisher.send(CONC, record(CO2=420.0, CH4=2.0))], 2)
        assert "co2_dry" not in result.readings[0].values
        assert result.problems == ["CO2: cannot convert 'furlongs' to ppm"]
    finally:
        driver.close()


def test_reports_dry_false_names_the_wet_quantities(mosquitto, publisher):
    driver = open_driver(LI7810, mosquitto, reports_dry=False, water_correction={"co2": (-0.012, 0.0)})
    try:
        result = poll_after(driver, lambda: publisher.send(CONC, record(CO2=420.0, CH4=2000.0)), 1)
        assert {"co2", "ch4"} <= set(result.readings[0].values) and "co2_dry" not in result.readings[0].values
    finally:
        driver.close()


def test_malformed_messages_are_named_and_the_records_around_them_kept(mosquitto, publisher):
    driver = open_driver(LI7820, mosquitto)
    bad = [b"\xfe\x00garbage", b"[1, 2]", json.dumps({"Concentration": {"NANOSECONDS": 0, "N2O": 330.0}}).encode(),
           json.dumps(record(N2O="lots")).encode(), json.dumps({"Concentration": [1]}).encode()]
    try:
        def send():
            publisher.send(CONC, record(seconds=T0, N2O=330.0))
            for payload in bad:
                publisher.send(CONC, payload)
            publisher.send(CONC, record(seconds=T0 + 1, N2O=""))  # warming up: blanks
            publisher.send(DIAG, b"{not json")
            publisher.send(CONC, record(seconds=T0 + 2, N2O=331.0))
        result = poll_after(driver, send, 9)
        assert [r.values.get("n2o_dry") for r in result.readings] == [330.0, 331.0]
        assert len(result.problems) == 8, result.problems
        assert "not JSON" in result.problems[0] and "garbage" in result.problems[0]
        assert "not a JSON object but list" in result.problems[1]
        assert "no SECONDS" in result.problems[2]
        assert "N2O: not a number: 'lots'" in result.problems[3]
        assert "'Concentration' holds list" in result.problems[4]
        assert result.problems[5] == f"N2O: no value ('') at {T0 + 1}"
        assert "no N2O value" in result.problems[6]
        assert result.problems[7].startswith(DIAG + ": malformed message skipped (not JSON")
    finally:
        driver.close()


def test_diag_bits_make_a_record_not_ok_unless_ignored(mosquitto, publisher):
    assert LicorDiag(0).ok and LicorDiag(18).flags == ("diag_bit_1", "diag_bit_4")
    assert LicorDiag(18, frozenset({1, 4})).ok
    driver = open_driver(LI7820, mosquitto, diag_ignore_bits=[4])
    try:
        result = poll_after(driver, lambda: [publisher.send(CONC, record(diag=16, N2O=330.0)),
                                             publisher.send(CONC, record(seconds=T0 + 1, diag=24, N2O=330.0))], 2)
        assert [(r.status, r.status_ok, r.status_flags) for r in result.readings] == [
            (16, True, ()), (24, False, ("diag_bit_3",))]
    finally:
        driver.close()


def test_a_broker_that_goes_away_is_a_transport_error_and_reopening_fails_until_it_is_back(tmp_path):
    broker = MosquittoBroker(tmp_path / "b").start()
    driver = open_driver(LI7820, broker)
    try:
        broker.kill()
        assert wait_until(lambda: driver.transport.fetch() == 0 and driver.transport.lost is not None)
        with pytest.raises(TransportError, match="went away"):
            driver.poll()
        driver.close()
        with pytest.raises(TransportError, match="cannot open"):
            driver.open()
        broker.start()
        driver.open()
        assert driver.transport.is_open and driver.poll().readings == []
    finally:
        driver.close()
        broker.kill()


def test_a_poll_reads_at_most_max_per_poll_and_the_rest_waits_for_the_next(mosquitto, publisher):
    driver = open_driver(LI7820, mosquitto, max_per_poll=10)
    try:
        for i in range(25):
            publisher.send(CONC, record(seconds=T0 + i, N2O=330.0))
        polls: list[PollResult] = []
        assert wait_until(lambda: polls.append(driver.poll()) or sum(len(p.readings) for p in polls) >= 25)
        assert max(len(p.readings) for p in polls) <= 10 and len([p for p in polls if p.readings]) >= 3
        times = [r.time for p in polls for r in p.readings]
        assert times == sorted(times) and len(set(times)) == 25  # every record once, in order
    finally:
        driver.close()


@pytest.mark.parametrize("url", ["socket://127.0.0.1:1883", "mqtt://127.0.0.1", "/dev/ttyUSB0"])
def test_the_url_must_name_the_analyzers_broker(url):
    with pytest.raises(ValueError, match="expected mqtt://host:port"):
        LI7820.Config(id="licor-1", url=url)


def test_an_unreachable_broker_cannot_be_opened():
    sub = MqttSubscription("mqtt://127.0.0.1:9", topics(), timeout_s=0.5)
    with pytest.raises(TransportError, match="cannot open"):
        sub.open()
    assert not sub.is_open


@pytest.mark.parametrize("name,cls", [("licor.li7810", LI7810), ("licor.li7815", LI7815), ("licor.li7820", LI7820)])
def test_the_drivers_keep_the_conventions(name, cls):
    assert load_driver(name) is cls
    check_driver_conventions(cls)
