"""The apps' own questions are trained word for word: `nanovl extract --schema invoice|receipt` (JSON with
line items, the schema's keys) and `nanovl video captions` (timed events as JSON).

For each form: stage 2 draws it, the training prompt equals the prompt the app builds for the same
input token for token (the check of tests/train/test_eval_slice.py), the target parses, validates
against the app's schema and is accepted by the app's decoding grammar, and the eval scores a
perfect answer 100 % and a wrong one 0 %. CPU only, a few seconds.
"""
from __future__ import annotations

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nanovl.apps import captions as cap
from nanovl.apps.documents import _page_message
from nanovl.apps.schemas import extraction_prompt, load_schema, response_format, validation_errors
from nanovl.apps.video import VideoOptions, VideoSession
from nanovl.inputs.transcript import Segment, Transcript
from nanovl.structured.grammar import compile_grammar, make_ll_tokenizer
from nanovl.train import evaluate as E
from nanovl.train.collate import MediaIds, assemble
from nanovl.train.data import videos as V
from nanovl.train.dataset import build_example
from nanovl.train import samples as S
from nanovl.train.data.documents import make_document_sample
from nanovl.train.samples import (DOC_QUESTIONS, RENDER_SCALE, STAGE_TASKS, VIDEO_QUESTIONS, TrainSample,
                                  draw_sample)

from test_eval_slice import _ctx, _processor


def _find(pred, limit: int = 4000) -> TrainSample:
    """The first stage-2 training sample (seed 0 up) that `pred` accepts."""
    for seed in range(limit):
        ts = draw_sample(seed, 2)
        if pred(ts):
            return ts
    raise AssertionError("no such stage-2 sample in the first seeds")


def _doc(kind: str, thinking: bool) -> TrainSample:
    return _find(lambda ts: ts.sample.task == "document" and ts.sample.truth["question_kind"] == "json_items"
                 and ts.sample.truth["kind"] == kind and ts.thinking == thinking)


def _dense(thinking: bool) -> TrainSample:
    return _find(lambda ts: ts.sample.task == "video" and ts.sample.truth["question_kind"] == "dense"
                 and ts.thinking == thinking)


def _training_ids(proc, ts: TrainSample, got) -> list[int]:
    """The training prompt ids laid out with the media token counts of the app's processed prompt."""
    cfg = proc.config
    ex = build_example(ts, proc.tokenizer, image_size=cfg.force_image_size, max_tiles=cfg.max_num_tiles,
                       mean=cfg.norm_mean, std=cfg.norm_std, with_target=False)
    counts = [n for it in got.mm_input.items
              for n in ([it.num_embeds] if it.kind == "image"
                        else [it.num_embeds // len(it.frame_prefix_ids)] * len(it.frame_prefix_ids))]
    want, _ = assemble(ex, counts, MediaIds(proc.image_token_id, proc.img_start_id, proc.img_end_id))
    return want, ex


def _accepts(tokenizer, fmt: dict, text: str) -> bool:
    state = compile_grammar(fmt).new_state(make_ll_tokenizer(tokenizer))
    return all(state.accept_token(i) for i in tokenizer.encode(text)) and state.is_accepting()


# ------------------------------------------------------------------ curriculum
def test_stage2_trains_the_app_forms_and_keeps_the_old_ones(monkeypatch):
    for old in ("json", "total", "vendor", "number", "date", "currency"):
        assert DOC_QUESTIONS[2][old] > 0
    for old in ("appear", "disappear", "interval", "count", "narration", "speech"):
        assert VIDEO_QUESTIONS[2][old] > 0
    # stage 1's documents stay single-field; its videos ask for dense captions too, the one form that
    # makes the model name what a clip shows (v3 without it: "a yellow circle" for every shape)
    assert "json_items" not in DOC_QUESTIONS[1] and VIDEO_QUESTIONS[1]["dense"] > 0
    # which question draw_sample asks, without rendering: the generators stubbed to echo it
    drawn: list[tuple[str, str]] = []

    def docs(seed, questions, *, scale, augment=True):
        drawn.extend(("document", question) for question in questions)
        return [SimpleNamespace(task="document") for _ in questions]

    def video(seed, question):
        drawn.append(("video", question))
        return SimpleNamespace(task="video"), [], [], []

    monkeypatch.setattr(S, "make_document_samples", docs)
    monkeypatch.setattr(S, "render_video_sample", video)
    monkeypatch.setattr(S, "make_chart_samples", lambda seed, asks, **kw: [SimpleNamespace(task="chart") for _ in asks])
    monkeypatch.setattr(S, "make_multi_image_sample", lambda seed, **kw: SimpleNamespace(task="multi_image"))
    monkeypatch.setattr(S, "make_reasoning_sample", lambda seed, **kw: SimpleNamespace(task="reasoning",
                                                                                      thinking=False))
    n = 20000
    for seed in range(n):
        draw_sample(seed, 2)
    for task, kind, table in (("document", "json_items", DOC_QUESTIONS[2]), ("video", "dense", VIDEO_QUESTIONS[2])):
        share = STAGE_TASKS[2][task] / sum(STAGE_TASKS[2].values()) * table[kind] / sum(table.values())
        got = drawn.count((task, kind)) / n
        assert abs(got - share) < 0.15 * share, (task, kind, got, share)


def test_draws_are_deterministic():
    for seed in (11, 12, 13):
        a, b = draw_sample(seed, 2), draw_sample(seed, 2)
        assert (a.sample.messages, a.sample.target, a.thinking) == (b.sample.messages, b.sample.target, b.thinking)
        assert [im.tobytes() for im in a.sample.images] == [im.tobytes() for im in b.sample.images]


# ------------------------------------------------------------------ extraction
@pytest.mark.parametrize("thinking", [False, True], ids=["think-off", "think-on"])
@pytest.mark.parametrize("kind", ["invoice", "receipt"])
def test_extraction_training_prompt_is_the_app_prompt(kind, thinking):
    proc = _processor()
    ts = _doc(kind, thinking)
    schema = load_schema(kind)
    # exactly what apps.documents.extract sends for one page
    messages = _page_message(ts.sample.images, extraction_prompt(schema), None)
    got = proc.process_chat(messages, enable_thinking=thinking)
    want, ex = _training_ids(proc, ts, got)
    assert ts.sample.question == extraction_prompt(schema)
    assert got.prompt_token_ids == want
    (item,) = got.mm_input.items
    assert torch.equal(item.pixel_values, ex.media[0].pixel_values)


@pytest.mark.parametrize("kind", ["invoice", "receipt"])
def test_extraction_target_is_the_apps_perfect_answer(kind):
    proc = _processor()
    schema = load_schema(kind)
    ts = _doc(kind, False)
    value = json.loads(ts.sample.target)
    assert validation_errors(value, schema) == []
    assert list(value) == list(schema["properties"])
    assert all(list(item) == list(schema["properties"]["items"]["items"]["properties"]) for item in value["items"])
    # compact, as the app's grammar writes it, and token by token inside that grammar
    assert ts.sample.target == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert _accepts(proc.tokenizer, response_format(schema), ts.sample.target)
    t = ts.sample.truth
    assert value[f"{kind}_number"] == t["invoice_number"] and value["items"] == t["items"]
    assert round(value["total"] * 100) == t["total_cents"]


# ------------------------------------------------------------------ video captions
def _session(proc, ts: TrainSample, tmp_path) -> VideoSession:
    """A VideoSession of the training clip's mp4 with its transcript, on a stand-in LLM (prompts only)."""
    script = V.random_script(random.Random(ts.sample.seed), size=V.DEFAULT_SIZE)
    path = tmp_path / f"video_{ts.sample.seed}.mp4"
    V.write_video(script, path)
    llm = SimpleNamespace(max_model_len=8192, tokenizer=proc.tokenizer, processor=proc,
                          video_token_count=proc.video_embed_count)
    transcript = Transcript(tuple(Segment(a, b, text) for a, b, text in ts.speech))
    return VideoSession(llm, str(path), VideoOptions(), transcript=transcript, progress=False)


@pytest.mark.parametrize("thinking", [False, True], ids=["think-off", "think-on"])
def test_captions_training_prompt_is_the_app_prompt(thinking, tmp_path):
    proc = _processor()
    ts = _dense(thinking)
    session = _session(proc, ts, tmp_path)
    (seg,) = session.segments
    # exactly what captions.ask_captions sends (ask_segments -> messages) for a one-segment video
    messages = session.messages(seg, cap.CAPTION_PROMPT, session.options.max_tokens)
    got = proc.process_chat(messages, enable_thinking=thinking)
    want, ex = _training_ids(proc, ts, got)
    assert ts.sample.question == cap.CAPTION_PROMPT
    assert got.prompt_token_ids == want
    (item,) = got.mm_input.items
    assert item.timestamps == ts.frame_times
    # the app decodes an mp4 (yuv420), training drew the frames: close, not equal
    assert (item.pixel_values - ex.media[0].pixel_values).abs().mean() < 0.05


def test_captions_target_is_the_apps_perfect_answer(tmp_path):
    proc = _processor()
    ts = _dense(False)
    duration = ts.sample.truth["duration"]
    session = _session(proc, ts, tmp_path)
    (seg,) = session.segments
    fmt = cap.response_format(seg.end - seg.start)
    assert fmt == cap.response_format(duration)
    value = json.loads(ts.sample.target)
    assert validation_errors(value, cap.caption_schema(duration)) == []
    assert ts.sample.target == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert _accepts(proc.tokenizer, fmt, ts.sample.target)
    parsed = cap.parse_captions(ts.sample.target)
    assert parsed == [cap.Caption(c["start"], c["end"], c["caption"]) for c in ts.sample.truth["captions"]]
    assert parsed == sorted(parsed, key=lambda c: c.start)


# ------------------------------------------------------------------ eval
def _out(text: str) -> SimpleNamespace:
    return SimpleNamespace(text=text, reasoning_content=None, token_ids=[])


def _rates(scores: dict) -> dict:
    return {k: h / t for k, (h, t) in scores.items()}


def test_eval_scores_line_items(tmp_path):
    proc = _processor()
    ctx = _ctx(proc.tokenizer, tmp_path)
    cases = E.make_cases("invoice_items", 12, E.DEFAULT_SEED_BASE, ctx)
    assert {c.truth["kind"] for c in cases} == {"invoice", "receipt"}
    for case in cases:
        schema = load_schema(case.truth["kind"])
        assert case.messages == _page_message(case.train.sample.images, extraction_prompt(schema), None)
        assert case.params.response_format == response_format(schema)
        assert set(_rates(E.score_invoice_items(case, _out(case.target), ctx)).values()) == {1.0}
        assert set(_rates(E.score_invoice_items(case, _out("not json"), ctx)).values()) == {0.0}
        good = json.loads(case.target)
        # every item's price one cent off: line items 0 %, the header still 100 %
        off = {**good, "items": [{**i, "unit_price": round(i["unit_price"] + 0.01, 2)} for i in good["items"]]}
        m = _rates(E.score_invoice_items(case, _out(json.dumps(off)), ctx))
        assert m["items_exact"] == 0.0 and m["all_exact"] == 0.0 and m["header_fields"] == 1.0
        assert m["item_count"] == 1.0 and m["schema_valid"] == 1.0
        # the other kind's number key is a wrong answer for this schema
        other = "invoice_number" if case.truth["kind"] == "receipt" else "receipt_number"
        swapped = {(other if k.endswith("_number") else k): v for k, v in good.items()}
        m = _rates(E.score_invoice_items(case, _out(json.dumps(swapped)), ctx))
        assert m["header_fields"] == 0.8 and m["all_exact"] == 0.0 and m["schema_valid"] == 0.0


def test_clean_items_are_unaugmented_pages_scored_like_invoice_items(tmp_path):
    ctx = _ctx(_processor().tokenizer, tmp_path)
    for case in E.make_cases("clean_items", 3, E.DEFAULT_SEED_BASE, ctx):
        clean = make_document_sample(case.seed, scale=RENDER_SCALE, augment=False, question="json_items")
        noisy = make_document_sample(case.seed, scale=RENDER_SCALE, question="json_items")
        page = np.asarray(case.train.sample.images[0])
        assert case.task == "clean_items" and case.target == clean.target
        assert np.array_equal(page, np.asarray(clean.images[0])) and not np.array_equal(page, np.asarray(noisy.images[0]))
        assert set(_rates(E.score_invoice_items(case, _out(case.target), ctx)).values()) == {1.0}


def test_eval_scores_dense_captions_within_one_second(tmp_path):
    proc = _processor()
    ctx = _ctx(proc.tokenizer, tmp_path)
    for case in E.make_cases("dense_captions", 3, E.DEFAULT_SEED_BASE, ctx):
        assert case.params.response_format == cap.response_format(case.train.sample.truth["duration"])
        assert case.messages[0]["content"][-1] == {"type": "text", "text": cap.CAPTION_PROMPT}
        assert set(_rates(E.score_dense_captions(case, _out(case.target), ctx)).values()) == {1.0}
        want = json.loads(case.target)
        # 1 s off (and pretty-printed, as the app's JSON export writes it) still matches
        near = [{**c, "start": c["start"] + 1.0, "end": c["end"] + 1.0} for c in want]
        m = _rates(E.score_dense_captions(case, _out(json.dumps(near, indent=2)), ctx))
        assert m["within_1s"] == 1.0 and m["precision_1s"] == 1.0 and m["exact"] == 0.0
        # 1.5 s late, or a different caption: no event matches
        late = [{**c, "start": c["start"] + 1.5, "end": c["end"] + 1.5} for c in want]
        renamed = [{**c, "caption": c["caption"] + " twice"} for c in want]
        for wrong in (late, renamed):
            m = _rates(E.score_dense_captions(case, _out(json.dumps(wrong)), ctx))
            assert m["within_1s"] == 0.0 and m["precision_1s"] == 0.0 and m["exact"] == 0.0
        assert set(_rates(E.score_dense_captions(case, _out("[]"), ctx)).values()) == {0.0}


# ------------------------------------------------------------------ markdown
def test_markdown_training_prompt_is_the_app_prompt():
    from nanovl.apps.documents import MARKDOWN_PROMPT
    from nanovl.train.data.documents import MARKDOWN_QUESTION

    assert MARKDOWN_QUESTION == MARKDOWN_PROMPT and DOC_QUESTIONS[2]["markdown"] > 0
    proc = _processor()
    ts = _find(lambda ts: ts.sample.task == "document" and ts.sample.truth["question_kind"] == "markdown"
               and not ts.thinking)
    # exactly what apps.documents.to_markdown sends for one page (thinking off, its default)
    got = proc.process_chat(_page_message(ts.sample.images, MARKDOWN_PROMPT, None), enable_thinking=False)
    want, ex = _training_ids(proc, ts, got)
    assert got.prompt_token_ids == want
    assert ts.sample.target.startswith("# ") and ts.sample.target.count("\n\n") >= 3
