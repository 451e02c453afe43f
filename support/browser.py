"""A real browser for the console's tests: Debian's headless Chromium driven by Selenium through
Debian's chromedriver. Installed with apt-get when missing (as root); otherwise one line says
how."""

import os
import shutil
import subprocess
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

PACKAGES = ("chromium", "chromium-driver")


class BrowserMissing(Exception):
    """Chromium or its driver is absent and could not be installed; the message says how."""


def ensure_chromium() -> tuple[str, str]:
    """The paths of chromium and chromedriver, installing Debian's packages first if needed."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if found[0] and found[1]:
        return found[0], found[1]
    fix = f"apt-get install -y {' '.join(PACKAGES)}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BrowserMissing(f"the browser tests need Chromium: {fix} (as root)")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *PACKAGES]):
        result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=1200)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise BrowserMissing(f"`{' '.join(command)}` failed ({last}): {fix}")
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if not (found[0] and found[1]):
        raise BrowserMissing(f"chromium or chromedriver still missing after installing: {fix}")
    return found[0], found[1]


def chromium(binary: str, driver: str, profile: Path) -> webdriver.Chrome:
    """Headless Chromium with a fresh profile, nothing fetched from the network on its own."""
    options = Options()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root in a container there is no user namespace to sandbox in
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1360,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.implicitly_wait(0)
    return browser
