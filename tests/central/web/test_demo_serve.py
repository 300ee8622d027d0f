"""`station-agent demo --serve`: after the run, the operations center stays up on the demo's data,
printing its URL and a login that works; the demo station is on the map and its page draws."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.browser import browser, shoot, wait_ready
from support.webapp import Client

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_demo_serve_keeps_the_operations_center_up(tmp_path):
    from selenium.webdriver.common.by import By

    proc = subprocess.Popen([str(BIN / "station-agent"), "demo", "--hours", "2", "--speed", "720", "--json",
                             "--run-dir", str(tmp_path / "demo"), "--serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        login = None
        deadline = time.monotonic() + 150
        assert proc.stdout is not None
        while login is None and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 5)
            line = proc.stdout.readline() if ready else ""
            if ready and not line:
                break
            if line.startswith('{"url"'):
                login = json.loads(line)
        assert login is not None, f"no URL line; exit {proc.poll()}: {proc.stderr.read()[-3000:] if proc.poll() is not None else ''}"
        assert login["url"].startswith("http://127.0.0.1:")
        client = Client(login["url"])
        status, doc = client.request("POST", "/api/login", {"name": login["user"], "password": login["password"]})
        assert status == 200 and doc["role"] == "admin", doc
        status, fleet = client.request("GET", "/api/fleet")
        (row,) = fleet
        assert row["station"] == "demo-tower" and row["minutes"] > 60 and row["latitude"] is not None, row
        status, hourly = client.request("GET", "/api/hourly?station=demo-tower&species=co2")
        assert {g["stream"] for g in hourly["series"]} == {"inlet:low", "inlet:mid", "inlet:top"}
        driver = browser()
        try:
            driver.get(login["url"] + "/")
            assert wait_ready(driver) == "login"
            driver.find_element(By.ID, "login-name").send_keys(login["user"])
            driver.find_element(By.ID, "login-password").send_keys(login["password"])
            driver.find_element(By.ID, "login-submit").click()
            assert wait_ready(driver) == "1"
            assert driver.find_element(By.ID, "map").get_attribute("data-stations") == "1"
            driver.get(login["url"] + "/#station/demo-tower")
            driver.refresh()
            assert wait_ready(driver) == "1"
            assert driver.find_elements(By.CSS_SELECTOR, "div.timeseries[data-species='co2'] svg path")
            shoot(driver, tmp_path, "web-demo-station.png")
        finally:
            driver.quit()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
