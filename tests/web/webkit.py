"""Helpers of the browser tests: a headless Chromium that never touches the network, and the page's actions."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx

CHROMIUM = os.environ.get("NANOVL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") or ""
CHROMEDRIVER = os.environ.get("NANOVL_CHROMEDRIVER") or shutil.which("chromedriver") or ""
HAVE_BROWSER = bool(CHROMIUM and CHROMEDRIVER and Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists())
NO_BROWSER = "needs chromium and chromedriver on PATH (or NANOVL_CHROMIUM / NANOVL_CHROMEDRIVER); CI installs both"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1280,900")


def start_chrome():
    """(driver, profile dir): Chromium with a fresh profile, its console log readable via get_log("browser")."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="nanovl-chrome-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: Selenium Manager never runs, so nothing is downloaded
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    return driver, profile


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    """Poll `condition()` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.03)


class Page:
    """The nanovl page in one browser tab, driven like a user would."""

    def __init__(self, driver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def by_id(self, element_id: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def open(self, *, clear_storage: bool = True, expect_models: bool = True) -> "Page":
        self.driver.get(self.base_url + "/")
        if clear_storage:
            self.js("localStorage.clear()")
            self.driver.get(self.base_url + "/")
        if expect_models:
            wait_for(lambda: self.js("return document.getElementById('status').dataset.state") == "ok",
                     what="the model list")
        self.driver.get_log("browser")  # start each test with an empty console log
        return self

    def set_field(self, element_id: str, value: str) -> None:
        """Type into a settings field and commit it (change event), as leaving the field does."""
        el = self.by_id(element_id)
        el.clear()
        if value:
            el.send_keys(value)
        self.js("arguments[0].dispatchEvent(new Event('change', {bubbles: true}))", el)

    def set_reasoning(self, on: bool) -> None:
        box = self.by_id("reasoning")
        if box.is_selected() != on:
            box.click()

    def attach(self, *paths: Path) -> None:
        self.by_id("file-input").send_keys("\n".join(str(Path(p).resolve()) for p in paths))

    def type(self, text: str) -> None:
        self.by_id("prompt").send_keys(text)

    def ask(self, text: str, *, wait: bool = True, timeout: float = 30.0) -> None:
        from selenium.webdriver.common.keys import Keys

        before = self.count(".msg.assistant")
        self.type(text)
        self.by_id("prompt").send_keys(Keys.ENTER)
        if wait:
            wait_for(lambda: self.count(".msg.assistant") > before, timeout, "the answer to start")
            self.wait_idle(timeout)

    def wait_idle(self, timeout: float = 30.0) -> None:
        wait_for(lambda: self.js("return document.getElementById('stop').hidden && "
                                 "!document.querySelector('.msg.assistant[aria-busy=\"true\"]')"),
                 timeout, "the answer to end")

    def count(self, selector: str) -> int:
        return self.js("return document.querySelectorAll(arguments[0]).length", selector)

    def last(self, selector: str, within: str = ".msg.assistant") -> str | None:
        """textContent of `selector` inside the last `within` element, or None when it has none."""
        return self.js("const all = document.querySelectorAll(arguments[1]);"
                       "const m = all[all.length - 1]; const e = m && m.querySelector(arguments[0]);"
                       "return e ? e.textContent : null;", selector, within)

    def answer(self) -> str | None:
        return self.last(".answer")

    def notice(self) -> str | None:
        return self.js("const n = document.getElementById('notice'); return n.hidden ? null : n.textContent;")

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]


def api_chat(base_url: str, body: dict, api_key: str | None = None) -> httpx.Response:
    """The same request through the API, not streamed."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.post(base_url + "/v1/chat/completions", json=body, headers=headers, timeout=60)


def num_running(server) -> int:
    """Requests the engine is decoding, as /metrics reports it."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    line = next(ln for ln in text.splitlines() if ln.startswith("nanovl_num_requests_running "))
    return int(float(line.split()[1]))
