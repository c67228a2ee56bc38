"""Fixtures of the browser tests: the bundled tiny model behind real uvicorn servers, one headless Chromium.

One browser and one default server serve the whole tests/web package; a test needing other
server settings (an API key) starts its own server over the same loaded model.
"""
from __future__ import annotations

import shutil

import pytest
from helpers import start_server_thread
from webkit import HAVE_BROWSER, Page, start_chrome

from nanovl.llm import BUNDLED_MODEL


@pytest.fixture(scope="package")
def start_server():
    """start_server(settings=None) -> a started ServerThread over the bundled model (stopped at the end)."""
    if not (BUNDLED_MODEL / "config.json").is_file():
        pytest.skip(f"the bundled tiny model is missing at {BUNDLED_MODEL}")
    from nanovl.engine.engine import EngineConfig, LLMEngine

    started, loaded = [], {}

    def start(settings=None):
        engine = LLMEngine(EngineConfig.from_kwargs(model=str(BUNDLED_MODEL)), **loaded)
        # later servers share the first one's weights and tokenizer
        loaded.update(model=engine.model, tokenizer=engine.tokenizer)
        started.append(start_server_thread(engine, settings))
        return started[-1]

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="package")
def server(start_server):
    return start_server()


@pytest.fixture(scope="package")
def driver():
    if not HAVE_BROWSER:
        pytest.skip("no chromium/chromedriver")
    drv, profile = start_chrome()
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(driver, server) -> Page:
    """The page freshly loaded from the default server, with empty localStorage and console log."""
    return Page(driver, server.url).open()
