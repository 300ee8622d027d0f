"""The registry in the operations center (issue 22): what is installed where, per station, from
the inventories and dated events stations send: instrument serial numbers with their swaps,
agent and config versions, cylinders with their values, pressures and forecast empty date. Read
for every role; its API in the OpenAPI description; the page in a real headless Chromium."""

from __future__ import annotations

from datetime import timedelta

from support.browser import REDRAWN, browser, shoot, wait_ready
from support.webapp import NOW, served  # noqa: F401 (a fixture)

from ghgnet.wire import EventWire, ParsedBatch, StatusMessage

INVENTORY = {
    "agent_version": "0.9.1", "config_version": 7,
    "devices": {"g2401": {"driver": "picarro.g2401", "serial_number": "B2", "enabled": True},
                "lgr": {"driver": "lgr.mgga", "serial_number": "L9", "enabled": True}},
    "cylinders": {"CAL-A": {"role": "calibration", "serial": "D1", "assigned": {"co2": 400.12, "ch4": 1890.5},
                            "scale": "WMO", "pressure_bar": 90.0, "fill_date": "2026-01-10", "low_pressure_bar": 30.0}},
}


def _ev(seq: int, days_before: float, kind: str, data: dict, device: str | None = None) -> EventWire:
    return EventWire(seq=seq, time=NOW - timedelta(days=days_before), kind=kind, severity="info",
                     message=kind.replace("inventory.", "").replace("_", " "), device=device, data=data)


def _install(served) -> None:  # noqa: F811
    store = served.store
    store.store_status(StatusMessage(station="bg-north", state="up", time=NOW, backlog=0, agent_version="0.9.1",
                                     interval_s=60.0, details={"inventory": INVENTORY}), NOW)
    events = [
        _ev(9001, 40, "inventory.device_added", {"driver": "picarro.g2401", "serial_number": "A1"}, "g2401"),
        _ev(9002, 2, "inventory.device_changed",
            {"from": {"driver": "picarro.g2401", "serial_number": "A1"},
             "to": {"driver": "picarro.g2401", "serial_number": "B2"}}, "g2401"),
        # CAL-A: 120, 105, 90 bar 30 and 15 days ago and now: 1 bar a day, 30 bar in 60 days
        _ev(9003, 30, "inventory.cylinder_installed", {"cylinder": "CAL-A", "serial": "D1", "pressure_bar": 120.0}),
        _ev(9004, 15, "inventory.cylinder_pressure", {"cylinder": "CAL-A", "serial": "D1", "pressure_bar": 105.0}),
        _ev(9005, 0, "inventory.cylinder_pressure", {"cylinder": "CAL-A", "serial": "D1", "pressure_bar": 90.0}),
    ]
    store.store_batch(ParsedBatch("bg-north", "event", NOW, events), NOW)


def test_the_registry_api_for_viewers(served):  # noqa: F811
    _install(served)
    vera = served.client("vera")
    status, rows = vera.request("GET", "/api/registry")
    assert status == 200, rows
    north = next(r for r in rows if r["station"] == "bg-north")
    assert (north["agent_version"], north["config_version"]) == ("0.9.1", 7)
    assert north["devices"] == {"g2401": "B2", "lgr": "L9"} and north["cylinders"] == {"CAL-A": 90.0}
    status, doc = vera.request("GET", "/api/registry/bg-north")
    assert status == 200, doc
    assert doc["serial_history"]["g2401"] == [
        {"from": "2026-01-23T00:01:00.000Z", "serial_number": "A1"},
        {"from": "2026-03-02T00:01:00.000Z", "serial_number": "B2"}]
    assert doc["serial_history"]["lgr"] == [{"from": None, "serial_number": "L9"}]
    (cal,) = doc["cylinder_forecasts"]
    assert (cal["cylinder"], cal["status"], cal["low_bar"]) == ("CAL-A", "ok", 30.0)
    assert cal["empty_at"][:10] == (NOW + timedelta(days=60)).date().isoformat()
    assert doc["inventory"]["cylinders"]["CAL-A"]["assigned"] == {"co2": 400.12, "ch4": 1890.5}
    assert [h["kind"] for h in doc["history"]] == [  # in time order
        "inventory.device_added", "inventory.cylinder_installed", "inventory.cylinder_pressure",
        "inventory.device_changed", "inventory.cylinder_pressure"]
    status, err = vera.request("GET", "/api/registry/nowhere")
    assert status == 404 and "nowhere" in err["error"]
    status, api = vera.request("GET", "/openapi.json")
    assert {"/api/registry", "/api/registry/{station}"} <= set(api["paths"])
    assert api["paths"]["/api/registry/{station}"]["get"]["x-required-role"] == "viewer"


def test_the_registry_page_in_a_browser(served, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _install(served)
    driver = browser()
    try:
        driver.get(served.url + "/")
        assert wait_ready(driver, ("login", "error")) == "login"
        driver.find_element(By.ID, "login-name").send_keys("vera")
        driver.find_element(By.ID, "login-password").send_keys("viewer-pass-1")
        driver.find_element(By.ID, "login-submit").click()
        assert wait_ready(driver) == "1"
        driver.find_element(By.LINK_TEXT, "Registry").click()
        WebDriverWait(driver, 15, ignored_exceptions=REDRAWN).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#registry tbody tr[data-station='bg-north']"))
        assert wait_ready(driver) == "1"
        row = driver.find_element(By.CSS_SELECTOR, "#registry tbody tr[data-station='bg-north']")
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        assert cells[2:5] == ["0.9.1", "v7", "g2401: B2, lgr: L9"] and cells[5] == "CAL-A: 90", cells
        row.find_element(By.LINK_TEXT, "bg-north").click()
        WebDriverWait(driver, 15, ignored_exceptions=REDRAWN).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#registry-devices tr[data-device='g2401']"))
        assert wait_ready(driver) == "1"
        g = driver.find_element(By.CSS_SELECTOR, "#registry-devices tr[data-device='g2401']")
        assert g.find_element(By.CLASS_NAME, "serial").text == "B2"
        assert g.find_element(By.CLASS_NAME, "serial-history").text == "2026-01-23: A1 → 2026-03-02: B2"
        cyl = driver.find_element(By.CSS_SELECTOR, "#registry-cylinders tr[data-cylinder='CAL-A']")
        texts = [td.text for td in cyl.find_elements(By.TAG_NAME, "td")]
        assert texts[:5] == ["CAL-A", "calibration", "D1", "co2 400.12, ch4 1890.5", "90"], texts
        assert texts[5:] == ["30", "-1.00", (NOW + timedelta(days=60)).date().isoformat()], texts
        assert "device changed" in driver.find_element(By.ID, "registry-history").text
        shoot(driver, tmp_path, "web-registry.png")
    finally:
        driver.quit()
