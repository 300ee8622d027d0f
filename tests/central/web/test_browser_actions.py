"""An operator's actions in the operations center, in a real headless Chromium (Selenium): flag hours
through the flag form and see central's hourly export change once the aggregation recomputes them;
acknowledge an alarm; replay a dead letter that central's clock now accepts. Each is checked in the
store and in the page, not only in the answer of the click."""

from __future__ import annotations

import io
from datetime import timedelta

from support.browser import REDRAWN, browser, shoot, wait_ready
from support.mqtt import minute
from support.network import START
from support.webapp import NOW, PASSWORDS, served  # noqa: F401 (a fixture)

from central.aggregation.worker import aggregate_all
from central.export import hourly_rows_for_export, write_icos_csv
from central.ingest import Ingestor, Message
from ghgnet.wire import encode_batch

FLAG_FROM, FLAG_TO = START + timedelta(days=1, hours=10), START + timedelta(days=1, hours=12)


def _log_in_to_events(driver, url: str, user: str = "otto") -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/#events")
    assert wait_ready(driver, ("login", "error")) == "login"
    driver.find_element(By.ID, "login-name").send_keys(user)
    driver.find_element(By.ID, "login-password").send_keys(PASSWORDS[user])
    driver.find_element(By.ID, "login-submit").click()
    assert wait_ready(driver) == "1"


def _export(served) -> dict[str, list[str]]:
    """bg-north's hourly CO2 of inlet:100m as `central-receiver export --level hourly` writes it, by hour."""
    out = io.StringIO()
    rows = hourly_rows_for_export(served.store, "bg-north", "co2", START, START + timedelta(days=3), "inlet:100m")
    assert write_icos_csv(rows, served.config, "bg-north", "co2", out) > 48
    lines = [line.split(";") for line in out.getvalue().splitlines() if not line.startswith("#")]
    head = lines[0]
    return {f"{r[2]}-{int(r[3]):02d}-{int(r[4]):02d}T{int(r[5]):02d}": dict(zip(head, r)) for r in lines[1:]}


def test_flag_hours_in_the_form_and_the_hourly_export_changes(served, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    before = _export(served)
    flagged = ("2026-03-02T10", "2026-03-02T11")
    assert all(before[h]["Flag"] == "U" and before[h]["QualityId"] == "1" for h in flagged), [before[h] for h in flagged]
    driver = browser()
    try:
        _log_in_to_events(driver, served.url)
        form = driver.find_element(By.ID, "flag-form")
        assert form.is_displayed()
        for field, value in (("flag-station", "bg-north"), ("flag-from", "2026-03-02T10:00:00Z"),
                             ("flag-to", "2026-03-02T12:00:00Z"), ("flag-stream", "inlet:100m"),
                             ("flag-species", "co2"), ("flag-reason", "local traffic on the tower road")):
            driver.find_element(By.ID, field).send_keys(value)
        Select(driver.find_element(By.ID, "flag-letter")).select_by_value("K")
        Select(driver.find_element(By.ID, "flag-reason-code")).select_by_value("contamination")
        driver.find_element(By.ID, "flag-submit").click()
        WebDriverWait(driver, 15, ignored_exceptions=REDRAWN).until(
            lambda d: "local traffic" in d.find_element(By.CSS_SELECTOR, "#flags tbody").text)
        assert wait_ready(driver) == "1"
        row = driver.find_element(By.CSS_SELECTOR, "#flags tbody tr").text
        assert "bg-north" in row and "otto" in row and "K" in row, row
        assert driver.find_element(By.ID, "flag-error").text == ""
        shoot(driver, tmp_path, "web-flag.png")
        # the receiver's aggregation recomputes the flagged hours; the export shows them invalid
        with served.app.state.answers.lock:
            aggregate_all(served.store, served.config, lambda: NOW)
        after = _export(served)
        for h in flagged:
            assert (after[h]["Flag"], after[h]["QualityId"]) == ("K", "2"), after[h]
        changed = {h for h in before if before[h] != after[h]}
        assert changed == set(flagged), sorted(changed)
        # and the API's hourly answer agrees
        status, doc = served.client("vera").request(
            "GET", "/api/hourly?station=bg-north&stream=inlet:100m&species=co2&from=2026-03-02T09:00:00Z"
                   "&to=2026-03-02T13:00:00Z")
        assert status == 200 and doc["series"][0]["flag"] == ["U", "K", "K", "U"], doc
        # a bad flag is refused in the form with the API's reason; nothing is added
        driver.find_element(By.ID, "flag-station").send_keys("bg-north")
        driver.find_element(By.ID, "flag-from").send_keys("2026-03-02T12:00:00Z")
        driver.find_element(By.ID, "flag-to").send_keys("2026-03-02T10:00:00Z")
        driver.find_element(By.ID, "flag-reason").send_keys("backwards")
        driver.find_element(By.ID, "flag-submit").click()
        WebDriverWait(driver, 15, ignored_exceptions=REDRAWN).until(lambda d: d.find_element(By.ID, "flag-error").text)
        assert "to: must be later than from" in driver.find_element(By.ID, "flag-error").text
        assert len(served.store.manual_flags("bg-north")) == 1
    finally:
        driver.quit()


def test_acknowledge_an_alarm(served, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with served.app.state.answers.lock:
        change = served.store.raise_alarm("data_lag", "city-1", None, NOW, "no data for 2 h", value=7200.0)
    alarm = served.store.alarm_list(None, "city-1", 10)[0]
    assert alarm.state == "open", change
    driver = browser()
    try:
        _log_in_to_events(driver, served.url)
        row = driver.find_element(By.CSS_SELECTOR, f"#alarms tr[data-alarm='{alarm.id}']")
        assert row.get_attribute("data-state") == "open" and "no data for 2 h" in row.text
        row.find_element(By.TAG_NAME, "button").click()
        WebDriverWait(driver, 15, ignored_exceptions=REDRAWN).until(lambda d: d.find_element(
            By.CSS_SELECTOR, f"#alarms tr[data-alarm='{alarm.id}']").get_attribute("data-state") == "acknowledged")
        row = driver.find_element(By.CSS_SELECTOR, f"#alarms tr[data-alarm='{alarm.id}']")
        assert "acknowledged by otto" in row.text and not row.find_elements(By.TAG_NAME, "button")
        shoot(driver, tmp_path, "web-alarm.png")
    finally:
        driver.quit()
    acked = served.store.alarm_list(None, "city-1", 10)[0]
    assert (acked.state, acked.acknowledged_by, acked.acknowledged_at) == ("acknowledged", "otto", NOW)


def test_replay_a_dead_letter(served, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # a minute sent while central's clock was 3 h behind: beyond the 1 h tolerance, dead-lettered;
    # at NOW (the served clock) it is on time
    early = NOW - timedelta(hours=3)
    payload = encode_batch("bg-north", "minute", [minute(1, t0=NOW - timedelta(minutes=2))], early,
                           store="fedcba9876543210fedcba9876543210")
    with served.app.state.answers.lock:
        (h,) = Ingestor(served.store, now=lambda: early).handle([Message("ghg/v1/bg-north/minute", payload)])
    assert h.outcome.dead_lettered == 1
    letter = served.store.dead_letters(limit=1, station="bg-north")[0]
    assert letter.reason_code == "time_in_future" and letter.resolved_at is None
    held = served.store.minute_count("bg-north")
    driver = browser()
    try:
        _log_in_to_events(driver, served.url)
        row = driver.find_element(By.CSS_SELECTOR, f"#dead-letters tr[data-letter='{letter.id}']")
        assert "time_in_future" in row.text
        row.find_element(By.TAG_NAME, "button").click()
        WebDriverWait(driver, 15, ignored_exceptions=REDRAWN).until(lambda d: "resolved" in d.find_element(
            By.CSS_SELECTOR, f"#dead-letters tr[data-letter='{letter.id}'] td.resolution").text)
        row = driver.find_element(By.CSS_SELECTOR, f"#dead-letters tr[data-letter='{letter.id}']")
        assert "stored" in row.text and not row.find_elements(By.TAG_NAME, "button"), row.text
        shoot(driver, tmp_path, "web-dead-letter.png")
    finally:
        driver.quit()
    assert served.store.minute_count("bg-north") == held + 1
    done = served.store.dead_letter(letter.id)
    assert done.resolved_at == NOW and done.resolution.startswith("stored")
