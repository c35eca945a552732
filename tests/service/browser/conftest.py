"""Real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium) against a
real embedded server: uvicorn on a free loopback port, settings built the way ``savgan serve
--embedded`` builds them, storage in a temporary folder.

Everything the browser asks of another site goes to a proxy that answers nothing and records it, so a
page that needs the internet fails here as it would offline, and the tests see what it asked for.
Without the browser the tests skip and say how to install it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .browser_support import EmbeddedServer, OutsideWorld, base_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_LINE = "apt-get install -y chromium chromium-driver"
WINDOW = "1366,900"  # a laptop screen


@pytest.fixture(scope="module")
def server_keys_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """What `savgan serve --embedded` gives with no keys configured: keys off."""
    with EmbeddedServer(base_settings(tmp_path_factory.mktemp("keys-off"))) as server:
        yield server


@pytest.fixture(scope="session")
def outside_world() -> Iterator[OutsideWorld]:
    world = OutsideWorld()
    yield world
    world.close()


@pytest.fixture(scope="session")
def browser(outside_world: OutsideWorld) -> Iterator[object]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"needs Debian's Chromium and its driver at {CHROMIUM} and {CHROMEDRIVER}: {INSTALL_LINE}")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install -e '.[test]'")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for script errors
    # The browser's own traffic (sign-in, updates, sync) is switched off: what reaches the proxy is the pages'.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WINDOW}",
                     f"--proxy-server={outside_world.url}", "--autoplay-policy=no-user-gesture-required",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--no-default-browser-check",
                     "--disable-features=AutofillServerCommunication,OptimizationHints,Translate,MediaRouter"):
        options.add_argument(argument)
    # Service(executable_path=...) keeps selenium-manager from looking for (or downloading) a driver.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
