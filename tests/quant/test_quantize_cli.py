"""`nanovl quantize` on the command line: text-only and VL random checkpoints, the user's own calibration
file, and every bad input as one error line with a non-zero exit status."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from safetensors import safe_open

from nanovl.cli import main
from nanovl.llm import BUNDLED_MODEL as TINY
from nanovl.model.fp8_linear import Fp8Linear
from nanovl.model.loader import load_model


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("nanovl: error: "), err
    return err


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_text_only_checkpoint_quantizes_every_linear_but_lm_head(random_text, tmp_path, capsys):
    dst = tmp_path / "lm-fp8"
    assert main(["quantize", str(random_text), str(dst), "--samples", "3"]) == 0
    summary = capsys.readouterr().out
    assert "calibrated on 3 requests" in summary and "kept in the model dtype: lm_head" in summary
    with safe_open(str(dst / "model.safetensors"), "pt") as f:
        scaled = sorted(k.removesuffix(".input_scale") for k in f.keys() if k.endswith(".input_scale"))
    model = load_model(dst)
    fp8 = sorted(n for n, m in model.named_modules() if isinstance(m, Fp8Linear))
    # text checkpoints name projections `backbone.layers.N.mixer.*`, as the modules are named
    assert scaled == fp8 and fp8 and all(n.startswith("backbone.layers.") for n in fp8)
    assert not isinstance(model.lm_head, Fp8Linear)


def test_own_calibration_file_replaces_the_drawn_requests(random_vl, tmp_path, capsys):
    calib = _write_jsonl(tmp_path / "calib.jsonl", [
        json.dumps({"messages": [{"role": "user", "content": "What is 2 + 2?"}]}),
        "",
        json.dumps({"model": "ignored", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Add the numbers 17 and 25."}]}]}),
    ])
    dst = tmp_path / "vl-fp8"
    assert main(["quantize", str(random_vl), str(dst), "--calibration", str(calib)]) == 0
    assert "calibrated on 2 requests" in capsys.readouterr().out
    # sharded source, sharded copy: the index names every tensor, scales included
    index = json.loads((dst / "model.safetensors.index.json").read_text())["weight_map"]
    assert "language_model.backbone.layers.0.mixer.in_proj.input_scale" in index
    assert not any(k.startswith(("vision_model.", "mlp1.")) and k.endswith("_scale") for k in index)


@pytest.mark.parametrize("case", ["missing_src", "dst_is_checkpoint", "dst_is_file", "src_quantized",
                                  "calibration_missing", "calibration_not_json", "calibration_no_messages",
                                  "calibration_empty", "calibration_media_missing", "bad_device"])
def test_bad_input_is_one_error_line(case, random_vl, tmp_path, capsys):
    dst = tmp_path / "out"
    args = [str(random_vl), str(dst)]
    ok_line = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    if case == "missing_src":
        args[0], want = str(tmp_path / "nowhere"), "does not exist"
    elif case == "dst_is_checkpoint":
        dst.mkdir()
        (dst / "config.json").write_text((TINY / "config.json").read_text())
        want = "already holds a checkpoint"
    elif case == "dst_is_file":
        (tmp_path / "file").write_text("x")
        args[1], want = str(tmp_path / "file"), "is a file"
    elif case == "src_quantized":
        dst.mkdir()
        (dst / "config.json").write_text(json.dumps({**json.loads((random_vl / "config.json").read_text()),
                                                     "quantization_config": {"quant_method": "modelopt",
                                                                             "quant_algo": "FP8"}}))
        args, want = [str(dst), str(tmp_path / "again")], "already quantized"
    elif case == "calibration_missing":
        args += ["--calibration", str(tmp_path / "none.jsonl")]
        want = "cannot read calibration file"
    elif case == "calibration_not_json":
        args += ["--calibration", str(_write_jsonl(tmp_path / "c.jsonl", [ok_line, "{not json"]))]
        want = "c.jsonl line 2: not valid JSON"
    elif case == "calibration_no_messages":
        args += ["--calibration", str(_write_jsonl(tmp_path / "c.jsonl", [ok_line, ok_line, '{"prompt": "hi"}']))]
        want = "c.jsonl line 3: expected a chat request body"
    elif case == "calibration_empty":
        args += ["--calibration", str(_write_jsonl(tmp_path / "c.jsonl", ["", "  "]))]
        want = "holds no requests"
    elif case == "calibration_media_missing":
        line = json.dumps({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": str(tmp_path / "gone.png")}},
            {"type": "text", "text": "What is this?"}]}]})
        args += ["--calibration", str(_write_jsonl(tmp_path / "c.jsonl", [ok_line, line]))]
        want = "calibration request .*c.jsonl line 2"
    else:
        args += ["--device", "tpu"]
        want = "device 'tpu'"
    assert main(["quantize", *args]) == 1
    err = _error_line(capsys)
    assert re.search(want, err), err
    assert not (Path(args[1]) / "model.safetensors").exists()


@pytest.mark.parametrize("flags", [["--samples", "0"], ["--max-num-seqs", "0"], ["--seed", "-1"],
                                   ["--per-channel", "--calibration", "requests.jsonl"]])
def test_usage_errors_exit_2(flags, random_vl, tmp_path, capsys):
    assert main(["quantize", str(random_vl), str(tmp_path / "out"), *flags]) == 2
    assert flags[0] in _error_line(capsys)


def test_missing_dst_is_a_usage_error(random_vl, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["quantize", str(random_vl)])
    assert exit_.value.code == 2
    _error_line(capsys)
