"""The operations center's flux views (central/web/flux.py): the JSON API read by a viewer (and in
/openapi.json with its role), its refusals, and the /flux page in a real headless Chromium showing a
flux station's half hours coloured by their flags, u*, and the daily sums with u* filtering.

Two days of half hours of a flux station stored through the real ingest path: one processed half
hour of the simulated site as the template, its fluxes, flags and u* then set per half hour (a
diurnal cycle, a few flag 1 and 2, low u* on some nights), so the expected answers are known."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from support.browser import REDRAWN, browser, shoot, wait_ready
from support.webapp import PASSWORDS, ROLES, Client

from central.aggregation.flux_daily import daily_sums, night_by_sun
from central.config import CentralConfig
from central.store import open_store
from central.users import Accounts
from central.web import WebServer
from ghgnet.wire import parse_batch
from simulators.flux_site import FluxSiteSpec, simulate_half_hour
from station_agent.processing.flux import FluxSettings, block_from_columns, process_half_hour

STATION = "flux-a"
LAT, LON = 47.32, 8.41
DAY0 = datetime(2026, 6, 1, tzinfo=UTC)
N = 96  # two days of half hours
NOW = DAY0 + timedelta(days=2, minutes=5)


def half_hour_records() -> list[dict]:
    sim = simulate_half_hour(FluxSiteSpec(fs_hz=10.0), 5, DAY0)
    template = process_half_hour(block_from_columns(sim.start, sim.fs_hz, sim.columns), FluxSettings()).wire_dict()
    night = night_by_sun(LAT, LON)
    out = []
    for i in range(N):
        start = DAY0 + timedelta(minutes=30 * i)
        dark = night(start)
        sun = max(math.sin(math.pi * ((i % 48) / 48 - 0.25) * 2), 0.0)
        flag = 2 if i % 17 == 5 else 1 if i % 5 == 0 else 0
        out.append({**template, "seq": i + 1, "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "co2_flux_umol_m2_s": 3.0 if dark else -12.0 * sun + 2.0, "h_w_m2": 250.0 * sun - 20.0,
                    "le_w_m2": 300.0 * sun + 10.0, "flag_co2": flag, "flag_h": flag, "flag_le": 0 if flag == 1 else flag,
                    "ustar_ms": 0.05 if dark and i % 3 == 0 else 0.4})
    return out


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return half_hour_records()


@pytest.fixture
def served(tmp_path, records):
    config = CentralConfig.model_validate({"central": {"name": "flux network"},
                                           "storage": {"path": str(tmp_path / "c.sqlite")},
                                           "stations": {STATION: {"name": "Flux tower A", "latitude": LAT,
                                                                  "longitude": LON}}})
    store = open_store("sqlite", path=tmp_path / "c.sqlite")
    raw = {"schema": 1, "station": STATION, "store": "ab" * 16, "kind": "flux", "sent": "2026-06-03T00:05:00Z",
           "records": records}
    out = store.store_batch(parse_batch(f"ghg/v1/{STATION}/flux", json.dumps(raw).encode()), NOW)
    assert out.new == N
    accounts = Accounts(store)
    for name, role in ROLES.items():
        accounts.add(name, role, PASSWORDS[name])
    server = WebServer(config, "127.0.0.1", 0, store=store, now=lambda: NOW).start()
    try:
        yield server.url
    finally:
        server.stop()
        store.close()


def test_a_viewer_reads_the_half_hours_and_the_u_star_filtered_daily_sums(served, records):
    anonymous = Client(served)
    status, doc = anonymous.request("GET", f"/api/flux/halfhours?station={STATION}")
    assert status == 401, doc
    vera = Client(served).login("vera")
    status, stations = vera.request("GET", "/api/flux/stations")
    assert status == 200 and [s["station"] for s in stations] == [STATION], stations
    assert stations[0]["half_hours"] == N and stations[0]["last"] == "2026-06-02T23:30:00.000Z"
    status, hh = vera.request("GET", f"/api/flux/halfhours?station={STATION}&days=2")
    assert status == 200, hh
    assert (hh["from"], hh["to"]) == ("2026-06-01T00:00:00.000Z", "2026-06-03T00:00:00.000Z")
    assert len(hh["time"]) == N and hh["time"][0] == "2026-06-01T00:00:00.000Z"
    assert hh["co2_flux_umol_m2_s"] == [r["co2_flux_umol_m2_s"] for r in records]
    assert hh["flag_co2"] == [r["flag_co2"] for r in records] and hh["ustar_ms"] == [r["ustar_ms"] for r in records]

    status, daily = vera.request("GET", f"/api/flux/daily?station={STATION}&days=2&ustar=JJA=0.2")
    assert status == 200, daily
    want = daily_sums(records, {"JJA": 0.2}, night_by_sun(LAT, LON))
    assert [d["day"] for d in daily["days"]] == ["2026-06-01", "2026-06-02"]
    assert daily["ustar_filter"] == "night" and daily["ustar_thresholds"] == {"JJA": 0.2}
    for got, w in zip(daily["days"], want):
        assert (got["n_valid"], got["n_low_ustar"]) == (w.n_valid, w.n_low_ustar)
        assert got["co2_valid_g_c_m2"] == pytest.approx(w.co2_valid_g_c_m2)
    low = sum(1 for i, r in enumerate(records) if r["ustar_ms"] < 0.2 and r["flag_co2"] < 2)
    assert sum(d["n_low_ustar"] for d in daily["days"]) == low > 0  # only night half hours had low u*
    status, unfiltered = vera.request("GET", f"/api/flux/daily?station={STATION}&days=2")
    assert [d["n_low_ustar"] for d in unfiltered["days"]] == [0, 0] and unfiltered["ustar_filter"] is None


@pytest.mark.parametrize("path, parameter", [
    (f"/api/flux/daily?station={STATION}&ustar=fast", "ustar"),
    (f"/api/flux/daily?station={STATION}&ustar=XMAS=0.1", "ustar"),
    (f"/api/flux/daily?station={STATION}&ustar=9", "ustar"),
    (f"/api/flux/daily?station={STATION}&min_coverage=2", "min_coverage"),
    (f"/api/flux/halfhours?station={STATION}&colour=red", "query"),
    ("/api/flux/halfhours?station=no-such", "station"),
    (f"/api/flux/halfhours?station={STATION}&days=2&from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z", "days"),
])
def test_a_query_the_flux_api_cannot_answer_is_refused_naming_the_parameter(served, path, parameter):
    status, doc = Client(served).login("vera").request("GET", path)
    assert status == 400 and doc["parameter"] == parameter, doc


def test_the_flux_endpoints_are_described_with_the_viewer_role(served):
    status, spec = Client(served).request("GET", "/openapi.json")
    assert status == 200
    for path in ("/api/flux/stations", "/api/flux/halfhours", "/api/flux/daily"):
        op = spec["paths"][path]["get"]
        assert op["x-required-role"] == "viewer" and op["x-csrf"] is False, (path, op)
    assert {p["name"] for p in spec["paths"]["/api/flux/daily"]["get"]["parameters"]} >= {
        "station", "days", "from", "to", "ustar", "min_coverage"}
    assert "/flux" not in spec["paths"]


def test_the_flux_page_shows_the_flagged_half_hours_and_the_daily_sums(served, records, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser()
    try:
        driver.get(served + "/flux")
        assert wait_ready(driver, ("login", "error")) == "login"  # no session yet: sent to log in
        driver.get(served + "/")
        assert wait_ready(driver, ("login", "error")) == "login"
        driver.find_element(By.ID, "login-name").send_keys("vera")
        driver.find_element(By.ID, "login-password").send_keys(PASSWORDS["vera"])
        driver.find_element(By.ID, "login-submit").click()
        assert wait_ready(driver) == "1"
        driver.get(served + "/flux")
        assert wait_ready(driver) == "1"
        assert "vera (viewer)" in driver.find_element(By.ID, "who").text
        assert driver.find_element(By.ID, "flux-station").get_attribute("value") == STATION
        # every half hour drawn, each point in its flag's colour
        co2 = driver.execute_script("return charts['flux-co2'].getOption().series[1].data")
        assert len(co2) == N
        colours = {p["flag"]: p["itemStyle"]["color"] for p in co2}
        assert colours == {0: "#2a7a2a", 1: "#e0a000", 2: "#b00020"}, colours
        assert [p["flag"] for p in co2] == [r["flag_co2"] for r in records]
        heat = driver.execute_script("return charts['flux-heat'].getOption().series.map(s => s.name)")
        assert set(heat) == {"H", "LE"}
        assert driver.execute_script("return charts['flux-ustar-chart'].getOption().series[0].data.length") == N
        assert driver.find_elements(By.CSS_SELECTOR, "#flux-co2 svg path"), "no CO2 chart drawn"
        # the daily sums: u* filtered at night with the page's default 0.1 m/s
        rows = driver.find_elements(By.CSS_SELECTOR, "#flux-daily tbody tr")
        want = daily_sums(records, dict.fromkeys(("DJF", "MAM", "JJA", "SON"), 0.1), night_by_sun(LAT, LON))
        assert [r.get_attribute("data-day") for r in rows] == ["2026-06-01", "2026-06-02"]
        cells = [td.text for td in rows[0].find_elements(By.TAG_NAME, "td")]
        assert cells[1:4] == ["48", str(want[0].n_valid), str(want[0].n_low_ustar)], cells
        assert float(cells[5]) == pytest.approx(want[0].co2_valid_g_c_m2, abs=5e-4)
        assert "night" in driver.find_element(By.ID, "flux-ustar-filter").text
        shoot(driver, tmp_path, "web-flux.png")
        # no threshold: nothing removed for low u*
        box = driver.find_element(By.ID, "flux-ustar")
        box.clear()
        driver.find_element(By.ID, "flux-apply").click()
        WebDriverWait(driver, 15, ignored_exceptions=REDRAWN).until(lambda d: [
            td.text for td in d.find_elements(By.CSS_SELECTOR, "#flux-daily tbody tr:first-child td")][3:4] == ["0"])
        assert wait_ready(driver) == "1"
        # a threshold the API refuses is said on the page, which stays usable
        box.send_keys("fast")
        driver.find_element(By.ID, "flux-apply").click()
        WebDriverWait(driver, 15, ignored_exceptions=REDRAWN).until(
            lambda d: "ustar" in d.find_element(By.ID, "flux-error").text)
        assert wait_ready(driver) == "1"
    finally:
        driver.quit()
