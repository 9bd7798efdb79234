"""Headless Chromium driven by Selenium, for the web app's tests and tests/ui/screenshot.py.

Debian's ``chromium`` and ``chromium-driver`` packages (``apt-get install -y chromium chromium-driver``)
are used as installed: nothing is downloaded.
"""

from __future__ import annotations

import shutil
import time
from typing import Callable

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> tuple[str, str] | str:
    """(browser, driver) paths, or why they cannot be used."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("a Chromium browser", browser), ("chromedriver", driver)) if p is None)
        return f"{missing} not found (apt-get install -y chromium chromium-driver)"
    return browser, driver


def start_browser(width: int = 1400, height: int = 900, downloads: str | None = None):
    """A headless Chromium (Selenium WebDriver); raise RuntimeError when there is none."""
    found = find_browser()
    if isinstance(found, str):
        raise RuntimeError(found)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(argument)
    if downloads:
        options.add_experimental_option("prefs", {"download.default_directory": downloads})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def wait_until(condition: Callable[[], object], timeout: float = 30, what: str = "the page") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def data(driver, name: str) -> str:
    """``document.body.dataset[name]``: the state the page mirrors for tests."""
    return driver.execute_script("return document.body.dataset[arguments[0]] || ''", name)


def draw_box(driver, box: tuple[float, float, float, float]) -> None:
    """Drag a box (frame pixels x0, y0, x1, y1) on the page's canvas with the mouse."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "canvas")
    scale = driver.execute_script("const c = arguments[0]; const r = c.getBoundingClientRect(); "
                                  "return [r.width / c.width, r.height / c.height, r.width, r.height];", canvas)
    sx, sy, width, height = scale
    x0, y0, x1, y1 = box
    # Selenium's offsets count from the element's centre.
    start = (round(x0 * sx - width / 2), round(y0 * sy - height / 2))
    end = (round(x1 * sx - width / 2), round(y1 * sy - height / 2))
    actions = ActionChains(driver, duration=50)
    actions.move_to_element_with_offset(canvas, *start).click_and_hold()
    actions.move_to_element_with_offset(canvas, (start[0] + end[0]) // 2, (start[1] + end[1]) // 2)
    actions.move_to_element_with_offset(canvas, *end).release().perform()
