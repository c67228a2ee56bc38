"""`nanovl run`, `nanovl info`, --help of every subcommand, one-line errors, progress on stderr.

Commands run in-process through cli.main(argv) (the model loads in well under a second once
torch is imported); test_cli_serve.py covers the real console entry point in a subprocess.
Run: pytest tests/cli/test_cli_commands.py
"""
from __future__ import annotations

import io
import json
import math

import jsonschema
import pytest
import torch
from safetensors import safe_open

from nanovl import cli

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0,
                                                                              "maximum": 9}},
          "required": ["ok", "n"], "additionalProperties": False}


def run_main(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["serve", "chat", "run", "info", None])
def test_help(command, capsys):
    argv = [command, "--help"] if command else ["--help"]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nanovl")
    if command == "serve":
        assert "--allowed-media-root" in out and "--api-key" in out and "--max-num-seqs" in out
    if command is None:
        # the other helpers' subcommands are still listed
        assert all(name in out for name in ("serve", "chat", "run", "info", "video", "extract", "bench"))


def test_info_model_summary_and_media_cost(ckpt, media, capsys):
    code, out, _ = run_main(["info", ckpt, "--image", media["image"], "--video", media["video"]], capsys)
    assert code == 0
    with safe_open(f"{ckpt}/model.safetensors", "pt") as f:
        total = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert lines["parameters"].startswith(f"{total / 1e3:.2f}K")
    assert lines["layers"].startswith("6, pattern: M*M-M*")
    assert lines["context"] == "8192 tokens"
    from nanovl.llm import LLM

    llm = LLM(ckpt)
    image_cost = lines[f"image {media['image']}"]
    assert image_cost.startswith(f"{llm.image_token_count(32, 32)} tokens")
    # 8 frames at 4 fps sampled at the default 2 fps: 4 frames
    video_cost = lines[f"video {media['video']}"]
    assert f"4 frames, {llm.video_token_count(4)} image tokens" in video_cost


def test_run_prints_the_answer(ckpt, media, capsys):
    from nanovl.llm import LLM
    from nanovl.sampling_params import SamplingParams

    argv = ["run", ckpt, "what is this?", "--image", media["image"], "--max-tokens", "6", "--no-think"]
    code, out, _ = run_main(argv, capsys)
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": media["image"]}},
                                             {"type": "text", "text": "what is this?"}]}]
    want = LLM(ckpt).chat(messages, SamplingParams(temperature=0, max_tokens=6, enable_thinking=False))[0].text
    assert code == 0 and out == want + "\n"


def test_run_takes_one_state_slot_unless_told(ckpt, monkeypatch, capsys):
    # one conversation: more slots would hold state (and, on a GPU, graphs) no request uses
    from nanovl.llm import LLM

    slots = []
    real_init = LLM.__init__

    def spy(self, model=None, **kwargs):
        real_init(self, model, **kwargs)
        slots.append(self.engine.config.max_num_seqs)

    monkeypatch.setattr(LLM, "__init__", spy)
    assert run_main(["run", ckpt, "hi", "--max-tokens", "2", "--no-think"], capsys)[0] == 0
    assert run_main(["run", ckpt, "hi", "--max-tokens", "2", "--no-think", "--max-num-seqs", "3"], capsys)[0] == 0
    assert slots == [1, 3]


def test_run_video_and_reasoning(ckpt, media, capsys):
    argv = ["run", ckpt, "what happens?", "--video", media["video"], "--max-tokens", "5", "--show-reasoning"]
    code, out, err = run_main(argv, capsys)
    # thinking is on by default and the random model never answers after it: the thought is shown,
    # and the answer that never came is an error, not an empty line and exit 0
    assert code == 1 and out == "\n"
    last = err.splitlines()[-1]
    assert last.startswith("nanovl: error: ") and "reasoning" in last and len(err.splitlines()) > 1



def test_run_says_when_max_tokens_ran_out_in_the_thought(monkeypatch, capsys):
    import types

    import nanovl.cli as cli_module

    out = types.SimpleNamespace(text="", reasoning_content="adding 12 and 30", finish_reason="length")
    monkeypatch.setattr(cli_module, "_load_llm", lambda *a, **k: types.SimpleNamespace(chat=lambda *a, **k: [out]))
    code, _, err = run_main(["run", "what is the total?", "--max-tokens", "5"], capsys)
    assert code == 1 and err == ("nanovl: error: --max-tokens 5 ran out while the model was still reasoning; "
                                 "raise it, set a --thinking-budget, or add /no_think\n")
    out.text = "42"
    assert run_main(["run", "what is the total?", "--max-tokens", "5"], capsys)[:2] == (0, "42\n")


def test_run_json_schema(ckpt, tmp_path, capsys):
    schema = tmp_path / "answer.json"
    schema.write_text(json.dumps(SCHEMA))
    argv = ["run", ckpt, "json please", "--json-schema", str(schema), "--no-think", "--max-tokens", "60",
            "--temperature", "1.0", "--seed", "1"]
    code, out, _ = run_main(argv, capsys)
    assert code == 0
    jsonschema.validate(json.loads(out), SCHEMA)


def test_run_passes_the_sampling_filters(ckpt, monkeypatch, capsys):
    # --top-p / --top-k / --min-p reach the request, and a seeded filtered draw repeats
    from nanovl.llm import LLM

    seen = []
    real_chat = LLM.chat

    def spy(self, messages, params=None, **kwargs):
        seen.append(params)
        return real_chat(self, messages, params, **kwargs)

    monkeypatch.setattr(LLM, "chat", spy)
    argv = ["run", ckpt, "hi", "--max-tokens", "8", "--no-think", "--temperature", "0.8", "--top-p", "0.9",
            "--top-k", "20", "--min-p", "0.05", "--seed", "7"]
    first = run_main(argv, capsys)
    assert first[0] == 0 and run_main(argv, capsys) == first
    assert [(p.top_p, p.top_k, p.min_p, p.temperature) for p in seen] == [(0.9, 20, 0.05, 0.8)] * 2


def bad_schema(tmp_path, text):
    path = tmp_path / "s.json"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case", ["missing image", "broken image", "missing video", "missing schema",
                                  "schema not json", "schema not object", "schema invalid", "missing model",
                                  "too many words", "bad engine value", "info missing image", "top-p above 1",
                                  "negative top-k", "min-p above 1", "truncated shard", "shard not safetensors",
                                  "config a list", "config not json", "vision_config a number",
                                  "tokenizer garbage", "device unknown", "device cuda without one",
                                  "image is a folder", "port out of range"])
def test_bad_input_one_line_error(case, ckpt, media, tmp_path, capsys):
    argv = {
        "missing image": ["run", ckpt, "hi", "--image", str(tmp_path / "nope.png")],
        "broken image": ["run", ckpt, "hi", "--image", media["broken"]],
        "missing video": ["run", ckpt, "hi", "--video", str(tmp_path / "nope.mp4")],
        "missing schema": ["run", ckpt, "hi", "--json-schema", str(tmp_path / "nope.json")],
        "schema not json": ["run", ckpt, "hi", "--json-schema", bad_schema(tmp_path, "{oops")],
        "schema not object": ["run", ckpt, "hi", "--json-schema", bad_schema(tmp_path, "[1, 2]")],
        "schema invalid": ["run", ckpt, "hi", "--json-schema", bad_schema(tmp_path, '{"minProperties": "x"}')],
        "missing model": ["run", str(tmp_path / "no-model"), "hi"],
        "too many words": ["run", ckpt, "hi", "there"],
        "bad engine value": ["run", ckpt, "hi", "--max-num-seqs", "0"],
        "info missing image": ["info", ckpt, "--image", str(tmp_path / "nope.png")],
        "top-p above 1": ["run", ckpt, "hi", "--top-p", "1.5"],
        "negative top-k": ["run", ckpt, "hi", "--top-k", "-3"],
        "min-p above 1": ["run", ckpt, "hi", "--min-p", "2"],
        "truncated shard": ["run", damaged_copy(ckpt, tmp_path, "truncate"), "hi"],
        "shard not safetensors": ["run", damaged_copy(ckpt, tmp_path, "garbage"), "hi"],
        "config a list": ["run", damaged_copy(ckpt, tmp_path, "config-list"), "hi"],
        "config not json": ["info", damaged_copy(ckpt, tmp_path, "config-text")],
        "vision_config a number": ["run", damaged_copy(ckpt, tmp_path, "vision-5"), "hi"],
        "tokenizer garbage": ["run", damaged_copy(ckpt, tmp_path, "tokenizer"), "hi"],
        "device unknown": ["run", ckpt, "hi", "--device", "bogus"],
        "device cuda without one": ["run", ckpt, "hi", "--device", "cuda:7"],
        "image is a folder": ["run", ckpt, "hi", "--image", str(tmp_path)],
        "port out of range": ["serve", ckpt, "--port", "99999"],
    }[case]
    if case == "device cuda without one" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    code, out, err = run_main(argv, capsys)
    assert code == 1 and out == ""
    assert err.startswith("nanovl: error: ") and err.count("\n") == 1, err


def damaged_copy(ckpt: str, tmp_path, damage: str) -> str:
    """A copy of the checkpoint with one file broken the way a user's could be (an interrupted
    download, a hand edit)."""
    import shutil
    from pathlib import Path

    folder = Path(shutil.copytree(ckpt, tmp_path / f"damaged-{damage}"))
    shard = sorted(folder.glob("*.safetensors"))[-1]
    config = json.loads((folder / "config.json").read_text())
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif damage == "garbage":
        shard.write_bytes(b"\x07" * 2000)
    elif damage == "config-list":
        (folder / "config.json").write_text("[]")
    elif damage == "config-text":
        (folder / "config.json").write_text("{model: nemotron")
    elif damage == "vision-5":
        (folder / "config.json").write_text(json.dumps({**config, "vision_config": 5}))
    elif damage == "tokenizer":
        (folder / "tokenizer.json").write_text("this is not a tokenizer")
    return str(folder)


def test_a_damaged_shard_names_itself(ckpt, tmp_path, capsys):
    code, _, err = run_main(["run", damaged_copy(ckpt, tmp_path, "truncate"), "hi"], capsys)
    assert code == 1 and ".safetensors: not a readable safetensors file" in err


def test_an_image_that_is_no_image_is_refused_before_the_chat_starts(ckpt, media, monkeypatch, capsys):
    import nanovl.cli as cli_module

    loaded = []
    monkeypatch.setattr(cli_module, "_load_llm", lambda *a, **k: loaded.append(a))
    code, _, err = run_main(["chat", ckpt, "--image", media["broken"]], capsys)
    assert code == 1 and loaded == [] and err.startswith(f"nanovl: error: {media['broken']}: not a supported image")


@pytest.mark.parametrize("argv", [[], ["run"], ["run", "x", "--max-tokens", "many"], ["serve", "--bogus"],
                                  ["info", "--image"], ["frobnicate"]])
def test_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("nanovl: error: ") and err.count("\n") == 1, err


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal(ckpt, media, monkeypatch, capsys):
    # bars are drawn only when stderr is a terminal, so pipes and logs stay clean
    err = _TTY()
    monkeypatch.setattr("sys.stderr", err)
    assert cli.main(["run", ckpt, "hi", "--video", media["video"], "--max-tokens", "2", "--no-think"]) == 0
    assert "loading model" in err.getvalue() and "preprocessing video" in err.getvalue()
    capsys.readouterr()
    monkeypatch.undo()
    code, _, quiet = run_main(["run", ckpt, "hi", "--max-tokens", "2", "--no-think"], capsys)
    assert code == 0 and quiet == ""


def test_default_model_is_the_bundled_one(capsys):
    from nanovl.llm import BUNDLED_MODEL

    if not (BUNDLED_MODEL / "config.json").is_file():
        pytest.skip("the bundled tiny model is not there yet")
    code, out, _ = run_main(["info"], capsys)
    assert code == 0 and out.startswith(f"model: {BUNDLED_MODEL}")
    code, out, _ = run_main(["run", "hello", "--max-tokens", "3", "--no-think"], capsys)
    assert code == 0 and out.endswith("\n")


@pytest.mark.parametrize("seed", [2**64 + 777, 2**64 + 778])
def test_bundled_model_reads_a_chart_before_answering_its_value(seed, tmp_path, capsys):
    # reasoning is on by default: the thought reads every label in chart order, and the answer is the
    # thought's own reading of the asked label (v11 follows its readings 100 % of the time, n=100)
    from nanovl.llm import BUNDLED_MODEL
    from nanovl.train.data.charts import make_chart_sample
    from nanovl.train.samples import RENDER_SCALE

    if not (BUNDLED_MODEL / "config.json").is_file():
        pytest.skip("the bundled tiny model is not there yet")
    s = make_chart_sample(seed, scale=RENDER_SCALE, question="value")
    s.images[0].save(tmp_path / "chart.png")
    # --show-reasoning writes the thought to stderr, the answer alone to stdout
    code, answer, thought = run_main(["run", s.question, "--image", str(tmp_path / "chart.png"),
                                      "--show-reasoning", "--max-tokens", "64"], capsys)
    readings = dict(line.split(": ", 1) for line in thought.strip().split("\n") if ": " in line)
    assert code == 0 and list(readings) == s.truth["labels"], thought
    assert answer.strip() == readings[s.truth["label"]], (thought, answer)


def test_run_reads_a_pdf_as_its_pages(ckpt, media, tmp_path, capsys):
    from PIL import Image

    pdf = tmp_path / "two.pdf"
    Image.open(media["image"]).save(pdf, save_all=True, append_images=[Image.open(media["image"])], resolution=72.0)
    code, out, _ = run_main(["info", ckpt, "--image", str(pdf)], capsys)
    assert code == 0 and f"image {pdf}: " in out and "(2 pages, " in out
    code, _, err = run_main(["run", ckpt, "describe /no_think", "--image", str(pdf), "--max-tokens", "2"], capsys)
    assert code == 0, err
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 then garbage")
    code, _, err = run_main(["run", ckpt, "describe", "--image", str(tmp_path / "bad.pdf")], capsys)
    assert code == 1 and err.startswith(f"nanovl: error: {tmp_path / 'bad.pdf'}: not a readable PDF"), err
