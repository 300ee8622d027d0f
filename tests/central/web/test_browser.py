"""The operations center in a real headless Chromium (Debian's chromium + chromedriver, Selenium):
log in, see every station on the map and in the table, open a station, zoom its time series with
the mouse wheel. Screenshots go under the test's tmp dir and tests/artifacts/ (gitignored)."""

from __future__ import annotations

from support.browser import REDRAWN, browser, shoot, wait_ready
from support.network import STATIONS
from support.webapp import PASSWORDS, served  # noqa: F401 (a fixture)


def test_log_in_see_the_map_and_zoom_a_chart(served, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser()
    try:
        driver.get(served.url + "/")
        assert wait_ready(driver, ("login", "error")) == "login"
        driver.find_element(By.ID, "login-name").send_keys("vera")
        driver.find_element(By.ID, "login-password").send_keys("wrong password")
        driver.find_element(By.ID, "login-submit").click()
        WebDriverWait(driver, 10, ignored_exceptions=REDRAWN).until(lambda d: d.find_element(By.ID, "login-error").text)
        assert "wrong name or password" in driver.find_element(By.ID, "login-error").text
        driver.find_element(By.ID, "login-password").clear()
        driver.find_element(By.ID, "login-password").send_keys(PASSWORDS["vera"])
        driver.find_element(By.ID, "login-submit").click()
        assert wait_ready(driver) == "1"
        # the map: every station placed at its position, labelled, with no map tiles fetched
        box = driver.find_element(By.ID, "map")
        assert box.get_attribute("data-stations") == str(len(STATIONS))
        labels = {t.text for t in box.find_elements(By.CSS_SELECTOR, "svg text")}
        assert set(STATIONS) <= labels, labels
        assert "vera (viewer)" in driver.find_element(By.ID, "who").text
        shoot(driver, tmp_path, "web-map.png")
        # the station table
        driver.get(served.url + "/#stations")
        driver.refresh()
        assert wait_ready(driver) == "1"
        rows = driver.find_elements(By.CSS_SELECTOR, "#stations tbody tr")
        assert sorted(r.get_attribute("data-station") for r in rows) == sorted(STATIONS)
        cells = [td.text for td in rows[0].find_elements(By.TAG_NAME, "td")]
        assert cells[1] == "up" and cells[4].startswith("2026-03-0") and "/ 0.1" in cells[5], cells
        # bg-south sits 0.5 ppm above bg-north: beyond the 0.1 ppm goal
        assert "beyond goal" in driver.find_element(By.ID, "consistency").text
        # a station: one chart per species with a line per inlet; zoom with the wheel
        driver.get(served.url + "/#station/bg-north")
        driver.refresh()
        assert wait_ready(driver) == "1"
        species = {d.get_attribute("data-species")
                   for d in driver.find_elements(By.CSS_SELECTOR, "div.timeseries[data-station='bg-north']")}
        assert species == {"co2", "ch4"} or "co2" in species, species
        zoom = "return charts['ts-co2'].getOption().dataZoom[0]"
        before = driver.execute_script(zoom)
        assert (before["start"], before["end"]) == (0, 100)
        chart = driver.find_element(By.CSS_SELECTOR, "div.timeseries[data-species='co2']")
        ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(chart), 0, -600).perform()
        WebDriverWait(driver, 10, ignored_exceptions=REDRAWN).until(
            lambda d: d.execute_script(zoom)["end"] - d.execute_script(zoom)["start"] < 99)
        after = driver.execute_script(zoom)
        assert 0 < after["end"] - after["start"] < 99, after
        # the target chart's bias axis goes below zero: its labels keep the minus sign
        axis = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#targets-chart svg text")]
        assert any(t.startswith("-0.") for t in axis), axis
        bars = driver.find_elements(By.CSS_SELECTOR, "#completeness-chart svg path")
        assert bars, "no completeness bars"
        shoot(driver, tmp_path, "web-station.png")
        # the 1-year window: daily means, and the chart's heading says so
        Select(driver.find_element(By.ID, "station-days")).select_by_value("365")
        WebDriverWait(driver, 15, ignored_exceptions=REDRAWN).until(lambda d: d.execute_script(
            "return document.querySelector(\"div.timeseries[data-species='co2']\")?.dataset.resolution") == "day")
        assert wait_ready(driver) == "1"
        headings = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "#species-charts h3")]
        assert "co2 (daily means of valid hours)" in headings, headings
        points = driver.execute_script("return charts['ts-co2'].getOption().series[0].data.length")
        assert points == 3, points  # three days of data, one point a day
        # and the target bias as daily means, the legend says so
        names = driver.execute_script("return charts['targets'].getOption().series.map(s => s.name)")
        assert names and all(n.endswith(", daily means)") for n in names), names
    finally:
        driver.quit()
