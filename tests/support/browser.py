"""A real headless Chromium (Debian's chromium and chromium-driver) driven by selenium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.databases import IN_CI

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def require_chromium() -> tuple[str, str]:
    """Skip without Chromium on a developer machine; in CI that is a failure."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        missing = "chromium and chromium-driver are not installed"
        if IN_CI:
            pytest.fail(f"{missing}; CI must run the browser tests")
        pytest.skip(missing)
    return CHROMIUM, CHROMEDRIVER


@contextmanager
def chromium(downloads: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium that saves downloads into `downloads`."""
    binary, driver = require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--disable-gpu", "--lang=en-US"):  # fmt: skip
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.implicitly_wait(10)  # find_element waits for the page a click loads
    try:
        yield browser
    finally:
        browser.quit()
