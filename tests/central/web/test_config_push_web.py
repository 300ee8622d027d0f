"""Station configs pushed from the operations pages (issue 22): POST /api/registry/{station}/config
for admins only (viewers and operators 403, a session's push without its CSRF token 403), checked
before signing (bad TOML, a config for another station: 400 naming the field), signed with central's
key and published, retained, on the station's config topic of a real mosquitto; the versions and
steps for every role (GET); both in the OpenAPI description; the page in a real headless Chromium.
The push through to a real station agent is tests/central/web/test_config_push_station.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.browser import REDRAWN, browser, shoot, wait_ready
from support.webapp import NOW, PASSWORDS, Served, serve_network

from central.fleet.config_push import pushes
from ghgnet.signed_config import load_private_key, new_private_key, parse_signed_config, private_key_pem, verify_config
from ghgnet.timeutil import iso_utc
from ghgnet.wire import EventWire, ParsedBatch, StatusMessage

STATION = "bg-north"
GOOD = f'[station]\nid = "{STATION}"\nname = "North, pushed from the web"\n\n[processing]\nmin_samples = 10\n'


def serve_pushing(tmp_path, broker) -> Iterator[Served]:
    """The operations center (support/webapp.py's users) with a signing key and a real broker."""
    key = tmp_path / "keys" / "signing.pem"
    key.parent.mkdir()
    key.write_bytes(private_key_pem(new_private_key()))
    yield from serve_network(tmp_path, aggregate=False, mqtt={"host": broker.host, "port": broker.port},
                             fleet={"signing_key": str(key)})


@pytest.fixture
def pushing(tmp_path, mosquitto):
    yield from serve_pushing(tmp_path, mosquitto)


def retained(broker, topic: str) -> list[bytes]:
    """The retained message on `topic` (waits for the broker's SUBACK, then for the message)."""
    got: list[bytes] = []
    arrived, subscribed = threading.Event(), threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="config-reader", protocol=mqtt.MQTTv5)
    c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_message = lambda cl, u, msg: (got.append(bytes(msg.payload)), arrived.set())
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        assert subscribed.wait(15)
        arrived.wait(15)  # a retained message comes right after the SUBACK
    finally:
        c.disconnect()
        c.loop_stop()
    return got


def _steps(store) -> None:
    """The steps a station reported for version 1 (as the receiver stores them from its events)."""
    kinds = [("config.received", "info", {}), ("config.applied", "info", {}), ("config.healthy", "info", {})]
    events = [EventWire(seq=8000 + i, time=NOW + timedelta(seconds=10 * (i + 1)), kind=k, severity=sev,
                        message=f"config version 1 {k[7:]}", device=None, data={"version": 1, **extra})
              for i, (k, sev, extra) in enumerate(kinds)]
    events.append(EventWire(seq=8010, time=NOW + timedelta(minutes=5), kind="config.refused", severity="warning",
                            message="config version 1 is not newer than version 1", device=None,
                            data={"version": 1, "reason": "refused_replay"}))
    store.store_batch(ParsedBatch(STATION, "event", NOW, events), NOW)


def test_only_an_admin_pushes_and_everyone_reads_the_versions(pushing, mosquitto):
    vera, otto, ada = pushing.client("vera"), pushing.client("otto"), pushing.client("ada")
    path = f"/api/registry/{STATION}/config"
    for who in (vera, otto):
        status, err = who.request("POST", path, {"config": GOOD})
        assert status == 403 and "admin" in err["error"], err
    status, err = ada.request("POST", path, {"config": GOOD}, csrf=False)
    assert status == 403 and "X-CSRF-Token" in err["error"], err
    assert pushes(pushing.config.fleet.signing_key) == []  # nothing was signed

    status, row = ada.request("POST", path, {"config": GOOD})
    assert status == 201, row
    assert (row["station"], row["version"], row["user"], row["file"]) == (STATION, 1, "ada", "operations center")
    (payload,) = retained(mosquitto, f"ghg/v1/{STATION}/config")
    env = parse_signed_config(payload)
    verify_config(env, load_private_key(pushing.config.fleet.signing_key).public_key())  # raises if forged
    assert (env.station, env.version, env.config) == (STATION, 1, GOOD)

    _steps(pushing.store)
    for who in (vera, otto, ada):
        status, doc = who.request("GET", path)
        assert status == 200, doc
        (v1,) = doc["versions"]
        assert v1["pushes"][0]["user"] == "ada" and v1["pushes"][0]["source"] == "operations center"
        assert [s["step"] for s in v1["steps"]] == ["received", "applied", "healthy", "refused_replay"]
        assert v1["steps"][1]["time"] == iso_utc(NOW + timedelta(seconds=20))
        assert v1["state"] == "healthy"  # a replay refused leaves it as it was
    status, second = ada.request("POST", path, {"config": GOOD.replace("web", "web again")})
    assert status == 201 and second["version"] == 2, second


@pytest.mark.parametrize("text, field, words", [
    ('[station]\nid = "bg-north"\nname = "unclosed\n', "config", "not valid TOML"),
    ("", "config", "empty"),
    ('[processing]\nmin_samples = 10\n', "station", "no [station] table"),
    ('[station]\nid = "bg-south"\n', "station.id", "'bg-south'"),
])
def test_a_config_central_refuses_is_400_naming_the_field(pushing, mosquitto, text, field, words):
    ada = pushing.client("ada")
    status, err = ada.request("POST", f"/api/registry/{STATION}/config", {"config": text})
    assert status == 400, err
    assert err["parameter"] == field and err["error"].startswith(f"{field}: ") and words in err["error"], err
    assert pushes(pushing.config.fleet.signing_key) == []


def test_bad_toml_names_its_line(pushing):
    status, err = pushing.client("ada").request("POST", f"/api/registry/{STATION}/config",
                                                {"config": GOOD + "min_samples = = 3\n"})
    assert status == 400 and "line 7" in err["error"], err


def test_no_signing_key_and_no_broker_are_errors_that_say_so(tmp_path, mosquitto):
    gen = serve_pushing(tmp_path, mosquitto)
    served = next(gen)
    try:
        mosquitto.kill()  # the broker is gone
        ada = served.client("ada")
        status, err = ada.request("POST", f"/api/registry/{STATION}/config", {"config": GOOD})
        assert status == 502 and str(mosquitto.port) in err["error"], err
        served.config.fleet.signing_key.unlink()
        status, err = ada.request("POST", f"/api/registry/{STATION}/config", {"config": GOOD})
        assert status == 503 and "no signing key" in err["error"], err
    finally:
        gen.close()


def test_the_operations_are_described(pushing):
    status, api = pushing.client("vera").request("GET", "/openapi.json")
    assert status == 200
    ops = api["paths"]["/api/registry/{station}/config"]
    assert ops["get"]["x-required-role"] == "viewer" and not ops["get"]["x-csrf"]
    assert ops["post"]["x-required-role"] == "admin" and ops["post"]["x-csrf"]
    assert {"201", "400", "403", "502", "503"} <= set(ops["post"]["responses"])
    body = ops["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "config" in json.dumps(api["components"]["schemas"][body["$ref"].split("/")[-1]]["required"])


def _login(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(driver.base + "/")
    assert wait_ready(driver, ("login", "error")) == "login"
    driver.find_element(By.ID, "login-name").send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(PASSWORDS[name])
    driver.find_element(By.ID, "login-submit").click()
    assert wait_ready(driver) == "1"


def test_the_page_shows_versions_to_all_and_the_push_form_to_admins(pushing, mosquitto, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pushing.store.store_status(StatusMessage(station=STATION, state="up", time=NOW, backlog=0, agent_version="0.9.1",
                                             interval_s=60.0, details={}), NOW)
    wait = lambda d: WebDriverWait(d, 20, ignored_exceptions=REDRAWN)  # noqa: E731
    driver = browser()
    driver.base = pushing.url
    try:
        _login(driver, "ada")
        driver.get(f"{pushing.url}/#registry/{STATION}")
        assert wait_ready(driver) == "1"
        form = driver.find_element(By.ID, "config-push-form")
        assert form.is_displayed()
        text = driver.find_element(By.ID, "config-push-text")
        text.send_keys('[station]\nid = "bg-south"\n')  # the wrong station: refused, the field named
        driver.find_element(By.ID, "config-push-submit").click()
        wait(driver).until(lambda d: d.find_element(By.ID, "config-push-error").text)
        assert driver.find_element(By.ID, "config-push-error").text.startswith("station.id: ")
        text.clear()
        text.send_keys(GOOD)
        driver.find_element(By.ID, "config-push-submit").click()
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#config-versions tr[data-version='1']"))
        assert driver.find_element(By.ID, "config-push-result").get_attribute("data-version") == "1"
        assert driver.find_element(By.ID, "config-push-error").text == ""
        row = driver.find_element(By.CSS_SELECTOR, "#config-versions tr[data-version='1']")
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        assert cells[0] == "v1" and cells[2:5] == ["ada", "operations center", "pushed"], cells
        (payload,) = retained(mosquitto, f"ghg/v1/{STATION}/config")
        assert parse_signed_config(payload).config.replace("\r\n", "\n") == GOOD

        _steps(pushing.store)  # the station's steps arrive: a viewer sees them, without the form
        driver.find_element(By.ID, "logout").click()
        _login(driver, "vera")
        driver.get(f"{pushing.url}/#registry/{STATION}")
        assert wait_ready(driver) == "1"
        row = wait(driver).until(lambda d: d.find_element(By.CSS_SELECTOR, "#config-versions tr[data-version='1']"))
        assert row.get_attribute("data-state") == "healthy"
        steps = [s.get_attribute("data-step") for s in row.find_elements(By.CSS_SELECTOR, ".steps div")]
        assert steps == ["received", "applied", "healthy", "refused_replay"]
        assert "healthy" in row.find_element(By.CLASS_NAME, "steps").text
        assert not driver.find_element(By.ID, "config-push-form").is_displayed()
        shoot(driver, tmp_path, "web-config-push.png")
    finally:
        driver.quit()


def test_the_cli_checks_as_the_web_does(tmp_path, mosquitto):
    """`central-receiver station config push` goes through the same function: the same refusals,
    and its pushes numbered in the same log as the web's."""
    import subprocess

    from support.site import BIN

    key = tmp_path / "keys" / "signing.pem"
    central = tmp_path / "central.toml"
    central.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n\n[storage]\npath = "{tmp_path / "c.sqlite"}"'
                       f'\n\n[fleet]\nsigning_key = "{key}"\n')
    wrong, good = tmp_path / "wrong.toml", tmp_path / "good.toml"
    wrong.write_text('[station]\nid = "bg-south"\n')
    good.write_text(GOOD)
    cli = lambda f: subprocess.run([BIN / "central-receiver", "station", "config", "push", STATION, str(f),  # noqa: E731
                                    "--config", str(central)], capture_output=True, text=True, timeout=60)
    res = cli(good)
    assert res.returncode == 2 and "no signing key" in res.stderr, res.stderr
    key.parent.mkdir()
    key.write_bytes(private_key_pem(new_private_key()))
    res = cli(wrong)
    assert res.returncode == 2 and f"{wrong}: station.id: 'bg-south' in the config" in res.stderr, res.stderr
    res = cli(good)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["version"] == 1 and [p["version"] for p in pushes(key, STATION)] == [1]
