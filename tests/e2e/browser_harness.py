"""A real headless browser for the page tests: Debian's chromium driven through its
chromium-driver by Selenium (both installed by .ci/run). Where neither can be had, the tests
that need one skip and say why; nothing is downloaded at run time.

Chromium runs with a fresh profile and without the background traffic that this machine's
closed network refuses (sync, component updates, QUIC)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["browser", "screenshots", "wait_until"]

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--window-size=1280,1000")


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install -r requirements/test.txt)")
    binary = next((found for name in _BROWSERS if (found := shutil.which(name))), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("no headless browser: Debian's chromium and chromium-driver are not "
                    "installed here (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in _FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Path]:
    """Save what the browser shows as a PNG under the pytest temp dir; its path."""
    folder = tmp_path_factory.mktemp("screenshots")

    def save(driver: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        assert driver.save_screenshot(str(path)), path
        return path

    return save


def wait_until(found: Callable[[], Any], seconds: float = 20.0, poll: float = 0.1) -> Any:
    """``found()``'s first truthy result, polled until the deadline (browser waits are
    synchronous: the gateway runs in its own process). The status page rewrites its tables
    on each refresh, so an element found a moment ago may be gone when its text is read:
    that poll counts as not yet, not as a failure."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(None, seconds, poll_frequency=poll,
                         ignored_exceptions=(StaleElementReferenceException,)
                         ).until(lambda _: found())
