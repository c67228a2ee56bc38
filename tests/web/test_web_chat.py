"""The web page in headless Chromium against a real server with the bundled tiny model: loading, streamed
answers equal to the API's, attachments, reasoning, multi-turn and New chat.

Run: pytest tests/web/test_web_chat.py
"""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from webkit import HAVE_BROWSER, NO_BROWSER, api_chat, wait_for

import nanovl
from nanovl.apps.schemas import extraction_prompt, load_schema

pytestmark = pytest.mark.skipif(not HAVE_BROWSER, reason=NO_BROWSER)
INVOICE = Path(nanovl.__file__).parent / "assets" / "samples" / "invoice.png"
SCREENSHOT = Path("/tmp/nanovl_web.png")
SUM_QUESTION = "What is the sum of the line item amounts?"


def greedy(page, max_tokens: int, *, reasoning: bool = False) -> dict:
    """Set the page to greedy decoding; the request fields the API call must repeat."""
    page.set_field("temperature", "0")
    page.set_field("max-tokens", str(max_tokens))
    page.set_reasoning(reasoning)
    return {"temperature": 0, "max_tokens": max_tokens, "chat_template_kwargs": {"enable_thinking": reasoning}}


def image_message(text: str, path: Path) -> dict:
    import base64

    uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}}, {"type": "text", "text": text}]}


def test_page_loads_and_lists_the_model(page, server):
    models = httpx.get(server.url + "/v1/models").json()["data"]
    options = page.js("return [...document.querySelectorAll('#model option')].map(o => o.value)")
    assert options == [m["id"] for m in models] == ["tiny"]
    assert page.driver.title == "nanovl"
    # the page's own assets came through, under a strict content security policy
    resp = httpx.get(server.url + "/")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert httpx.get(server.url + "/web/main.js").headers["content-type"].startswith("text/javascript")
    page.driver.refresh()
    wait_for(lambda: page.js("return document.getElementById('status').dataset.state") == "ok", what="models")
    assert page.console_errors() == []


def test_streamed_answer_equals_the_api(page, server):
    fields = greedy(page, 48)
    page.set_field("extra-body", '{"ignore_eos": true}')
    # record every distinct answer text the page shows while the tokens arrive
    page.js("window.__seen = new Set(); new MutationObserver(() => {"
            " const a = document.querySelector('.msg.assistant .answer');"
            " if (a) window.__seen.add(a.textContent); })"
            ".observe(document.getElementById('log'), {childList: true, subtree: true, characterData: true});")
    page.ask("Count the items on the page.")
    shown = page.answer()
    want = api_chat(server.url, {"messages": [{"role": "user", "content": "Count the items on the page."}],
                                 "ignore_eos": True, **fields}).json()["choices"][0]["message"]["content"]
    assert shown == want and len(want) > 10
    seen = [s for s in page.js("return [...window.__seen]") if s and s != "…"]
    assert len(seen) >= 2 and all(want.startswith(s) for s in seen), seen
    meta = page.last(".meta")
    assert "48 tokens" in meta and "tok/s" in meta and "cut at the max tokens limit" in meta
    assert page.console_errors() == []


def test_invoice_attachment_answers_as_the_api(page, server):
    question = extraction_prompt(load_schema("invoice"))  # what `nanovl extract --schema invoice` asks
    fields = greedy(page, 400)
    page.attach(INVOICE)
    wait_for(lambda: page.count("#tray .thumb img"), what="the thumbnail")
    assert page.last(".thumb-name", within="#tray") == "invoice.png"
    page.ask(question)
    want = api_chat(server.url, {"messages": [image_message(question, INVOICE)], **fields}).json()
    assert page.answer() == want["choices"][0]["message"]["content"]
    json.loads(page.answer())  # the tiny model reads the page into JSON
    assert page.count(".msg.user .thumbs img") == 1 and page.count("#tray .thumb") == 0
    assert f"prompt {want['usage']['prompt_tokens']} tokens" in page.last(".meta")
    page.driver.save_screenshot(str(SCREENSHOT))


def test_reasoning_shows_a_thought_only_when_on(page, server):
    question = "How many units were bought in total?"
    for on in (True, False):
        fields = greedy(page, 200, reasoning=on)
        page.attach(INVOICE)
        page.ask(question)
        want = api_chat(server.url, {"messages": [image_message(question, INVOICE)], **fields}).json()
        msg = want["choices"][0]["message"]
        assert page.answer() == msg["content"]
        if on:
            assert msg["reasoning_content"]  # the tiny model sums the line items first
            assert page.last(".thought .thought-body") == msg["reasoning_content"]
            # folded once the answer came; the summary says for how long it thought
            assert page.js("return document.querySelector('.msg.assistant:last-child details.thought').open") is False
            assert page.last(".thought summary").startswith("Thought for")
        else:
            assert "reasoning_content" not in msg
            assert page.last(".thought") is None


def test_multi_turn_keeps_history_and_new_chat_clears_it(page, server):
    fields = greedy(page, 24)
    page.set_field("extra-body", '{"ignore_eos": true}')
    from selenium.webdriver.common.keys import Keys

    # Shift+Enter is a new line, not a send
    page.type("first line")
    page.by_id("prompt").send_keys(Keys.SHIFT, Keys.ENTER)
    assert page.count(".msg") == 0 and page.by_id("prompt").get_property("value") == "first line\n"
    page.by_id("prompt").clear()
    page.ask("What is the total?")
    first = page.answer()
    page.ask("And the vendor?")
    history = [{"role": "user", "content": "What is the total?"}, {"role": "assistant", "content": first},
               {"role": "user", "content": "And the vendor?"}]
    extra = {"ignore_eos": True, **fields}
    assert page.answer() == api_chat(server.url, {"messages": history, **extra}).json()["choices"][0]["message"]["content"]
    page.by_id("new-chat").click()
    assert page.count(".msg") == 0
    page.ask("And the vendor?")
    alone = api_chat(server.url, {"messages": history[2:], **extra}).json()["choices"][0]["message"]["content"]
    assert page.answer() == alone
    assert page.count(".msg.assistant") == 1


def test_several_images_and_a_video_in_one_message(page, server, tmp_path):
    import base64

    from helpers import write_gray_mp4

    clip = Path(write_gray_mp4(tmp_path / "clip.mp4", 8, 30, size=64))
    second = tmp_path / "second.png"
    second.write_bytes(INVOICE.read_bytes())
    fields = greedy(page, 16)
    page.attach(INVOICE, second, clip)
    wait_for(lambda: page.count("#tray .thumb") == 3, what="three thumbnails")
    # one removed again from the tray is not sent
    page.js("document.querySelectorAll('#tray .remove')[1].click()")
    assert page.count("#tray .thumb") == 2 and page.count("#tray .thumb.video video") == 1
    page.ask("What happens?")
    assert page.count(".msg.user .thumbs .thumb") == 2
    uri = lambda p, mime: f"data:{mime};base64," + base64.b64encode(p.read_bytes()).decode()  # noqa: E731
    content = [{"type": "image_url", "image_url": {"url": uri(INVOICE, "image/png")}},
               {"type": "video_url", "video_url": {"url": uri(clip, "video/mp4")}},
               {"type": "text", "text": "What happens?"}]
    want = api_chat(server.url, {"messages": [{"role": "user", "content": content}], **fields}).json()
    assert page.last(".error") is None
    assert page.answer() == want["choices"][0]["message"]["content"]
    assert f"prompt {want['usage']['prompt_tokens']} tokens" in page.last(".meta")


def test_dropped_files_are_attached(page):
    # a drop carrying a PNG drawn in the page lands in the tray, as a picker choice would
    page.driver.execute_async_script("const c = document.createElement('canvas'); c.width = c.height = 8;"
            "const done = arguments[arguments.length - 1];"
            "c.toBlob((blob) => { const dt = new DataTransfer();"
            " dt.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));"
            " document.body.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));"
            " const shown = !document.getElementById('drop-overlay').hidden;"
            " document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));"
            " window.__overlayShown = shown; done(); });")
    assert page.js("return window.__overlayShown") is True
    assert page.last(".thumb-name", within="#tray") == "dropped.png"
    assert page.by_id("drop-overlay").is_displayed() is False


def test_schema_and_thinking_budget_reach_the_server(page, server):
    schema = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    fields = greedy(page, 120, reasoning=True)
    page.set_field("json-schema", json.dumps(schema))
    page.set_field("thinking-budget", "6")
    page.attach(INVOICE)
    page.ask(SUM_QUESTION)
    fields.update(thinking_token_budget=6,
                  response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})
    msg = api_chat(server.url, {"messages": [image_message(SUM_QUESTION, INVOICE)], **fields}).json()
    msg = msg["choices"][0]["message"]
    assert page.answer() == msg["content"] and set(json.loads(msg["content"])) == {"total"}
    # unbudgeted, the model writes a 250-character trace for this question; 6 tokens are a few words
    assert 0 < len(msg["reasoning_content"]) < 40 and page.last(".thought-body") == msg["reasoning_content"]
    assert page.js("return document.querySelector('.msg.assistant .answer pre.json') !== null")


def test_pdf_attachment_answers_as_the_api(page, server, tmp_path):
    # a PDF goes as OpenAI's file part; the server reads its pages as images
    import base64

    from PIL import Image

    pdf = tmp_path / "invoice.pdf"
    Image.open(INVOICE).convert("RGB").save(pdf, resolution=144.0)
    question = extraction_prompt(load_schema("invoice"))
    fields = greedy(page, 400)
    page.attach(pdf)
    wait_for(lambda: page.count("#tray .thumb"), what="the PDF in the tray")
    page.ask(question)
    uri = "data:application/pdf;base64," + base64.b64encode(pdf.read_bytes()).decode()
    part = {"type": "file", "file": {"file_data": uri, "filename": "invoice.pdf"}}
    want = api_chat(server.url, {"messages": [{"role": "user", "content": [part, {"type": "text", "text": question}]}],
                                 **fields}).json()
    assert page.answer() == want["choices"][0]["message"]["content"]
    assert f"prompt {want['usage']['prompt_tokens']} tokens" in page.last(".meta")
    assert page.console_errors() == []


def test_video_speech_setting_sends_the_transcript_option(page, server, tmp_path):
    # the narrated video's answer needs its speech: the tiny model reads "12" off the transcript line
    from nanovl.train.data.videos import has_speech, make_video_sample

    if not has_speech():
        pytest.skip("espeak-ng is not installed (narrated videos)")
    sample = make_video_sample(2**64 + 5, tmp_path)
    question = f"According to the narration, what is the {sample.truth['narration']['key']}?"
    fields = greedy(page, 12)
    page.js("const box = document.getElementById('video-speech'); if (!box.checked) box.click();")
    page.attach(Path(sample.video_path))
    page.ask(question, timeout=120)
    import base64

    uri = "data:video/mp4;base64," + base64.b64encode(Path(sample.video_path).read_bytes()).decode()
    part = {"type": "video_url", "video_url": {"url": uri, "transcript": "auto"}}
    want = api_chat(server.url, {"messages": [{"role": "user", "content": [part, {"type": "text", "text": question}]}],
                                 **fields}).json()["choices"][0]["message"]["content"]
    assert page.answer() == want == sample.truth["narration"]["value"]
    assert "video speech" in page.js("return document.getElementById('opts-summary').textContent")
    page.js("document.getElementById('video-speech').click()")
