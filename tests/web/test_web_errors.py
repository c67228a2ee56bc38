"""The web page when things go wrong: bad settings, server 4xx, unusable files, a lost server, Stop,
hostile text, and a server that wants an API key.

Run: pytest tests/web/test_web_errors.py
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from webkit import HAVE_BROWSER, NO_BROWSER, Page, api_chat, num_running, wait_for

import nanovl

pytestmark = pytest.mark.skipif(not HAVE_BROWSER, reason=NO_BROWSER)
BAD_SCHEMA = '{"type": "nonsense"}'
INVOICE = Path(nanovl.__file__).parent / "assets" / "samples" / "invoice.png"


def ask_normal(page) -> None:
    """A plain question that must work (the page recovered)."""
    page.set_field("max-tokens", "8")
    page.ask("What is the total?")
    assert page.last(".error") is None and page.answer()


def test_schema_that_is_not_json_is_refused_before_sending(page):
    page.set_field("json-schema", '{"type": "object",')
    page.ask("hello", wait=False)
    notice = wait_for(page.notice, what="the notice")
    assert notice.startswith("The JSON schema is not valid JSON:")
    assert page.count(".msg") == 0
    # the field to fix has the focus, and the text is still there to send again
    assert page.js("return document.activeElement.id") == "json-schema"
    assert page.by_id("prompt").get_property("value") == "hello"


def test_server_error_shows_its_message_and_the_page_keeps_working(page, server):
    page.set_field("json-schema", BAD_SCHEMA)
    page.ask("hello")
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "nonsense"}}}}
    resp = api_chat(server.url, body)
    assert resp.status_code == 400
    assert page.last(".error") == f"Error 400: {resp.json()['error']['message']}"
    assert "invalid JSON schema" in page.last(".error")
    assert "not kept in the conversation" in page.last(".note", within=".msg.user").lower()
    page.set_field("json-schema", "")
    ask_normal(page)


def test_file_the_server_cannot_read_shows_its_message(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    page.attach(notes)
    page.ask("read this")
    error = page.last(".error")
    assert error.startswith("Error 400: image #1: not a supported image format"), error
    ask_normal(page)
    # a PDF goes as a file part; a broken one gets the server's message too
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    page.attach(pdf)
    page.ask("read this")
    error = page.last(".error")
    assert error.startswith("Error 400: image #1 (PDF): not a readable PDF"), error
    ask_normal(page)


def test_stop_aborts_the_generation_and_frees_the_server(page, server):
    page.set_field("max-tokens", "6000")
    page.set_field("extra-body", '{"ignore_eos": true}')
    page.set_reasoning(False)
    page.ask("Tell me everything.", wait=False)
    wait_for(lambda: len(page.answer() or "") > 20, what="the answer to stream")
    assert num_running(server) == 1
    page.by_id("stop").click()
    page.wait_idle(5)
    partial = page.answer()
    assert "stopped after" in page.last(".meta") and len(partial) > 20
    wait_for(lambda: num_running(server) == 0 and server.async_engine.num_running == 0, 10, "the server to drop it")
    # the page is usable again, and the partial answer stayed in the conversation
    page.set_field("extra-body", "")
    ask_normal(page)
    history = page.js("return window.nanovl.chat.history")
    assert history[1] == {"role": "assistant", "content": partial}
    # New chat in the middle of an answer stops it too, and nothing of it leaks into the new chat
    page.set_field("max-tokens", "6000")
    page.set_field("extra-body", '{"ignore_eos": true}')
    page.ask("Tell me everything.", wait=False)
    wait_for(lambda: len(page.answer() or "") > 20, what="the answer to stream")
    page.by_id("new-chat").click()
    page.wait_idle(5)
    assert page.count(".msg") == 0 and page.js("return window.nanovl.chat.history") == []
    wait_for(lambda: num_running(server) == 0, 10, "the server to drop it")


def test_model_output_is_text_never_markup(page, tmp_path):
    hostile = ('<img src=x onerror="window.__xss = 1"> <b>bold</b>\n'
               '```html\n<script>window.__xss = 2</script>\n```\nafter')
    made = page.js("const box = document.createElement('div'); document.body.append(box);"
                   "window.nanovl.renderText(box, arguments[0]);"
                   "const tags = [...box.querySelectorAll('*')].map(e => e.tagName);"
                   "const text = box.textContent; box.remove(); return [tags, text];", hostile)
    tags, text = made
    assert tags == ["DIV", "PRE", "CODE", "DIV"]
    assert "<img src=x" in text and "<script>" in text and "<b>bold</b>" in text
    # a file name with markup is a caption, not markup
    evil = tmp_path / '<img src=x onerror="window.__xss=3">.png'
    shutil.copy(INVOICE, evil)
    page.attach(evil)
    wait_for(lambda: page.count("#tray .thumb"), what="the thumbnail")
    assert page.last(".thumb-name", within="#tray") == evil.name
    assert page.count("#tray img") == 1
    assert page.js("return window.__xss === undefined")


def test_network_failure_is_shown(driver, start_server):
    lost = start_server()
    page = Page(driver, lost.url).open()
    lost.stop()
    page.ask("anyone there?")
    assert page.last(".error").startswith("Network error: cannot reach the server")
    assert page.by_id("send").is_displayed() and not page.by_id("stop").is_displayed()


def test_api_key_is_asked_for_stored_and_sent(driver, start_server):
    from nanovl.server.state import ServerSettings

    locked = start_server(ServerSettings(api_key="sk-web-test"))
    page = Page(driver, locked.url).open(expect_models=False)
    assert "needs an API key" in wait_for(page.notice, what="the key notice")
    assert page.js("return document.activeElement.id") == "api-key"
    page.set_field("api-key", "sk-web-test")
    wait_for(lambda: page.js("return document.getElementById('status').dataset.state") == "ok", what="models")
    ask_normal(page)
    # kept across a reload; the API itself stays locked without it
    page.open(clear_storage=False)
    assert page.by_id("api-key").get_property("value") == "sk-web-test"
    assert api_chat(locked.url, {"messages": [{"role": "user", "content": "hi"}]}).status_code == 401


@pytest.mark.parametrize("stored", ["5", '"text"', "[1, 2]", "null", "{not json"])
def test_a_damaged_settings_entry_gives_the_defaults(page, stored):
    # JSON that is no object threw in the settings' loader, and the page never started
    page.js("localStorage.setItem('nanovl.settings.v1', arguments[0])", stored)
    page.open(clear_storage=False)
    assert page.js("return document.getElementById('temperature').value") == ""
    ask_normal(page)
    assert page.console_errors() == []
