"""Headless Debian Chromium for the explorer's browser tests and benchmark, driven offline.

selenium talks to Debian's chromedriver at an explicit path, so nothing looks for or downloads a
browser or a driver. `unavailable()` says why the browser cannot run here (the tests skip with it).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: the flags of a root CI machine: no sandbox, no GPU, nothing that reaches the network
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
#: seconds a condition may take to become true before the wait fails (a bound, not a sleep)
WAIT_SECONDS = 30.0
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver; pip install selenium"


def unavailable() -> str:
    """ "" when the browser can run, else why not (with the install line)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return f"headless Chromium needs {', '.join(missing)} ({INSTALL})" if missing else ""


@contextmanager
def browser(width: int = 1400, height: int = 900) -> Iterator[object]:
    """A selenium driver on headless Chromium with a fresh profile; console messages are logged."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="twograd-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + (f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: object, condition: Callable[[object], object], timeout: float = WAIT_SECONDS) -> object:
    """Poll `condition(driver)` until it is truthy (returned), or fail after `timeout` seconds."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def console_errors(driver: object) -> list[str]:
    """The page's console messages of level SEVERE (errors) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
