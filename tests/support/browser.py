"""Headless Chromium for the operations center's tests (Debian's chromium + chromedriver, Selenium):
start it, wait for a view to be drawn (<body data-ready>), keep screenshots in tests/artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException

REDRAWN = (StaleElementReferenceException,)
"""A page element replaced while a wait reads it (a table redrawn): the wait tries again."""

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver; ./dev test installs them when root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1400,1800"):
        opts.add_argument(flag)
    return webdriver.Chrome(options=opts, service=Service(str(CHROMEDRIVER)))


def wait_ready(driver, states=("1", "error", "login")) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30, ignored_exceptions=REDRAWN).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") in states)
    body = driver.find_element(By.TAG_NAME, "body")
    state = body.get_attribute("data-ready")
    assert state != "error", body.get_attribute("data-error")
    return state


def shoot(driver, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / name)
