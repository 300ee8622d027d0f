"""The operators' dashboard in a real headless Chromium (Debian's chromium + chromedriver, driven
by Selenium): it loads, shows every station of a demo-like network, and draws its plots. A
screenshot is saved under the test's tmp dir and copied to tests/artifacts/ (gitignored)."""

from __future__ import annotations

import json
import shutil
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from support.network import START, STATIONS, fill_network, station_config

from central.aggregator import aggregate_all
from central.config import CentralConfig
from central.server import DashboardServer
from central.store import open_store

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NOW = START + timedelta(days=3, minutes=1)


@pytest.fixture
def served(tmp_path):
    config = CentralConfig.model_validate({"central": {"name": "demo network"},
                                           "storage": {"path": str(tmp_path / "c.sqlite")},
                                           "stations": station_config()})
    store = open_store("sqlite", path=tmp_path / "c.sqlite")
    fill_network(store)
    aggregate_all(store, config, lambda: NOW)
    server = DashboardServer(config, "127.0.0.1", 0, store=store, now=lambda: NOW).start()
    try:
        yield server
    finally:
        server.stop()
        store.close()


def _browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("the dashboard test needs Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver; ./dev test installs them when root)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the dashboard test needs selenium (pip install -e '.[test]')")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1500,2400"):
        opts.add_argument(flag)
    return webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))


def test_api_answers_json_for_every_station(served):
    stations = json.load(urllib.request.urlopen(f"{served.url}/api/stations"))
    assert sorted(s["station"] for s in stations) == sorted(STATIONS)
    assert all(s["state"] == "up" for s in stations)
    hourly = json.load(urllib.request.urlopen(f"{served.url}/api/hourly?station=bg-north&species=co2"))
    assert {g["stream"] for g in hourly["series"]} == {"inlet:100m", "inlet:10m"}
    assert len(hourly["series"][0]["time"]) == 72
    cons = json.load(urllib.request.urlopen(f"{served.url}/api/consistency?species=co2"))
    (pair,) = cons["offsets"]  # bg-south sits 0.5 ppm above bg-north: beyond the 0.1 ppm goal
    assert pair["beyond_goal"] and pair["mean"] == pytest.approx(-0.5, abs=0.05)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{served.url}/api/hourly")
    assert err.value.code == 400


def test_dashboard_loads_shows_every_station_and_draws_its_plots(served, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        driver.get(served.url + "/")
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
                                        in ("1", "error"))
        body = driver.find_element(By.TAG_NAME, "body")
        assert body.get_attribute("data-ready") == "1", body.get_attribute("data-error")
        rows = driver.find_elements(By.CSS_SELECTOR, "#stations tbody tr")
        assert sorted(r.get_attribute("data-station") for r in rows) == sorted(STATIONS)
        assert {r.get_attribute("data-state") for r in rows} == {"up"}
        for station in STATIONS:
            for kind, mark in (("timeseries", "path.series"), ("target", "circle.point"),
                               ("completeness", "rect.bar")):
                (svg,) = driver.find_elements(By.CSS_SELECTOR, f'svg.plot[data-kind="{kind}"][data-station="{station}"]')
                marks = svg.find_elements(By.CSS_SELECTOR, mark)
                assert marks, f"{station}: {kind} plot has no {mark}"
                if kind == "timeseries":
                    assert len(marks) == 2 and all(len(m.get_attribute("d")) > 100 for m in marks)
                assert svg.size["width"] > 100 and svg.size["height"] > 100
            band = driver.find_elements(By.CSS_SELECTOR, f'svg.plot[data-kind="target"][data-station="{station}"] rect.goal-band')
            assert len(band) == 1 and float(band[0].get_attribute("height")) > 1
        assert "beyond goal" in driver.find_element(By.ID, "consistency").text
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "dashboard.png")
    print(f"screenshot: {shot} (copied to {ARTIFACTS / 'dashboard.png'})")
