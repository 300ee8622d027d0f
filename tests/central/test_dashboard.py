"""The operators' dashboard in a real headless Chromium (Debian's chromium + chromedriver, driven
by Selenium): it loads, shows every station, and draws its plots. First on a synthetic
three-station network (tests/support/network.py) served in-process, then on the real demo
(`station-agent demo`: broker, simulators, agent and receiver as processes) served by a
`central-receiver serve` process. Screenshots are saved under the test's tmp dir and copied to
tests/artifacts/ (gitignored)."""

from __future__ import annotations

import json
import select
import signal
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.network import START, STATIONS, fill_network, station_config

from central.aggregation.worker import aggregate_all
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


def _points_by_series(driver, kind: str, station: str) -> dict[str, int]:
    from selenium.webdriver.common.by import By

    out: dict[str, int] = {}
    for c in driver.find_elements(By.CSS_SELECTOR, f'svg.plot[data-kind="{kind}"][data-station="{station}"] '
                                                   "circle.point"):
        out[c.get_attribute("data-series")] = out.get(c.get_attribute("data-series"), 0) + 1
    return out


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
                               ("calibration", "circle.point"), ("completeness", "rect.bar")):
                (svg,) = driver.find_elements(By.CSS_SELECTOR, f'svg.plot[data-kind="{kind}"][data-station="{station}"]')
                marks = svg.find_elements(By.CSS_SELECTOR, mark)
                assert marks, f"{station}: {kind} plot has no {mark}"
                if kind == "timeseries":
                    assert len(marks) == 2 and all(len(m.get_attribute("d")) > 100 for m in marks)
                assert svg.size["width"] > 100 and svg.size["height"] > 100
            for kind in ("target", "calibration"):
                band = driver.find_elements(By.CSS_SELECTOR,
                                            f'svg.plot[data-kind="{kind}"][data-station="{station}"] rect.goal-band')
                assert len(band) == 1 and float(band[0].get_attribute("height")) > 1
            # three calibrations a station: RMSE and residuals of each, drift from the second on
            assert _points_by_series(driver, "calibration", station) == {"fit RMSE": 3, "max |residual|": 3,
                                                                          "drift": 2}
        assert "beyond goal" in driver.find_element(By.ID, "consistency").text
        # ages as the table writes them; a negative one (station times ahead of central's clock)
        # reads "... ahead", never as a negative duration
        ages = driver.execute_script("return [dur(30), dur(600), dur(7300), dur(-5), dur(-7300), dur(null)]")
        assert ages == ["30 s", "10 min", "2.0 h", "5 s ahead", "2.0 h ahead", "-"]
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "dashboard.png")
    print(f"screenshot: {shot} (copied to {ARTIFACTS / 'dashboard.png'})")


BIN = Path(sys.executable).parent


def _cli(*args: str, timeout_s: float) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout_s)
    assert proc.returncode == 0, f"{args[:2]} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    return proc


def _serve(config: Path) -> tuple[subprocess.Popen, str]:
    """`central-receiver serve` as a process on a free port; returns it and its URL."""
    proc = subprocess.Popen([str(BIN / "central-receiver"), "serve", "--config", str(config), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"central-receiver serve did not print its URL:\n{err[-3000:]}")
    return proc, json.loads(line)["url"]


def _series_points(path_d: str) -> int:
    return sum(1 for c in path_d if c in "ML")


def test_dashboard_of_the_real_demo_shows_its_station_and_draws_every_plot(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.monotonic()
    run_dir = tmp_path / "demo"
    # 3 simulated hours that hold two calibrations whatever the time of day: the first runs at once
    # (no valid one yet), the next at the 6-hourly slot 2 hours later; a target at the odd hour between
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now.replace(hour=now.hour - now.hour % 6) - timedelta(hours=2)
    demo = _cli(BIN / "station-agent", "demo", "--hours", "3", "--speed", "720", "--run-dir", run_dir, "--json",
                "--start", start.isoformat(), timeout_s=120)
    summary = json.loads(demo.stdout)
    assert datetime.fromisoformat(summary["simulated"]["start"]) == start
    assert summary["lost"] == summary["duplicates"] == 0
    kinds = summary["kinds"]
    assert kinds["calibration"]["stored"] >= 2 and kinds["target"]["stored"] >= 1, kinds
    config = run_dir / "central.toml"
    demo_stations = sorted(tomllib.loads(config.read_text())["stations"])
    assert demo_stations == [summary["station"]] == ["demo-tower"]
    agg = _cli(BIN / "central-receiver", "aggregate", "--config", config, timeout_s=60)
    assert "hour(s) recomputed" in agg.stdout

    server, url = _serve(config)
    try:
        api = {s["station"]: s for s in json.load(urllib.request.urlopen(f"{url}/api/stations"))}
        assert sorted(api) == demo_stations
        inlets = {x["stream"] for x in json.load(urllib.request.urlopen(f"{url}/api/series?station=demo-tower"))
                  if x["species"] == "co2"}
        assert inlets == {"inlet:low", "inlet:mid", "inlet:top"}
        hourly = json.load(urllib.request.urlopen(f"{url}/api/hourly?station=demo-tower&species=co2"))
        hourly_points = {g["stream"].removeprefix("inlet:"): sum(v is not None for v in g["mean"])
                         for g in hourly["series"]}
        driver = _browser()
        try:
            driver.get(url + "/")
            WebDriverWait(driver, 20).until(
                lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") in ("1", "error"))
            body = driver.find_element(By.TAG_NAME, "body")
            assert body.get_attribute("data-ready") == "1", body.get_attribute("data-error")
            rows = driver.find_elements(By.CSS_SELECTOR, "#stations tbody tr")
            assert sorted(r.get_attribute("data-station") for r in rows) == demo_stations
            for row in rows:
                health = api[row.get_attribute("data-station")]
                cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
                # the demo stopped its agent cleanly: the station said "down" on the way out
                assert row.get_attribute("data-state") == health["state"] == cells[2] == "down", (cells, health)
                assert cells[3].endswith(" ago") and cells[10] == str(kinds["minute"]["stored"])
                assert health["minutes"] == kinds["minute"]["stored"] and health["reason"]
                # the data lag: minutes stamped after central's "now" (the demo's simulated clock
                # can run ahead of the wall clock) read as "... ahead", never as a negative age
                if abs(health["data_lag_s"]) > 60:
                    assert cells[7].endswith(" ahead") == (health["data_lag_s"] < 0), (cells, health)
                assert not cells[7].startswith("-"), cells
            st = "demo-tower"

            def plot(kind: str):
                (svg,) = driver.find_elements(By.CSS_SELECTOR, f'svg.plot[data-kind="{kind}"][data-station="{st}"]')
                assert svg.size["width"] > 100 and svg.size["height"] > 100
                return svg

            # one line per inlet through every hourly mean the API has; a lone hour gets a marker
            paths = plot("timeseries").find_elements(By.CSS_SELECTOR, "path.series")
            drawn = {p.get_attribute("data-series"): _series_points(p.get_attribute("d")) for p in paths}
            assert drawn == hourly_points and sum(drawn.values()) >= 5, (drawn, hourly_points)
            assert all(n >= 1 and p.get_attribute("d").startswith("M") for p, n in zip(paths, drawn.values()))
            marked = plot("timeseries").find_elements(By.CSS_SELECTOR, "circle.vertex")
            assert {c.get_attribute("data-series") for c in marked} == {k for k, n in hourly_points.items() if n == 1}
            assert len(_points_by_series(driver, "target", st)) >= 1
            assert sum(_points_by_series(driver, "target", st).values()) == kinds["target"]["stored"]
            for kind in ("target", "calibration"):
                (band,) = plot(kind).find_elements(By.CSS_SELECTOR, "rect.goal-band")
                assert float(band.get_attribute("height")) > 1
            cal = _points_by_series(driver, "calibration", st)
            n_cal = kinds["calibration"]["stored"]
            assert cal == {"fit RMSE": n_cal, "max |residual|": n_cal, "drift": n_cal - 1}, cal
            bars = plot("completeness").find_elements(By.CSS_SELECTOR, "rect.bar")
            assert bars and max(float(b.get_attribute("height")) for b in bars) > 1
            shot = tmp_path / "dashboard-demo.png"
            assert driver.save_screenshot(str(shot))
        finally:
            driver.quit()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            for f in (server.stdout, server.stderr):
                f.close()
    assert server.returncode == 0
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "dashboard-demo.png")
    took = time.monotonic() - started
    print(f"demo dashboard in {took:.1f} s; screenshot: {shot} (copied to {ARTIFACTS / 'dashboard-demo.png'})")
    assert took < 90
