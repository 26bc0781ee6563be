"""Headless Chromium for the page tests: Debian's chromium driven through its
chromedriver by Selenium (`make setup` installs both when run as root)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

BROWSER_PACKAGES = "chromium chromium-driver"


@contextmanager
def chromium(width: int = 1400, height: int = 1300) -> Iterator[webdriver.Chrome]:
    """A headless Chromium that records the page's console; closed on exit."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        raise RuntimeError(
            f"no chromium/chromedriver on PATH: `make setup` as root installs them, "
            f"or run: sudo apt-get install -y {BROWSER_PACKAGES}"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield browser
    finally:
        browser.quit()


def console_errors(browser: webdriver.Chrome) -> list[str]:
    """The console messages of level SEVERE (errors, failed loads) since the last call."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
