"""Post-training FP8 quantization of a checkpoint, end to end (`nanovl quantize`): load, calibrate
the LM projections' input ranges on calibration requests, write ModelOpt's FP8 layout.

    report = quantize_checkpoint("path/to/bf16-checkpoint", "path/to/fp8-copy", num_samples=32)
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from nanovl.quant.calibrate import LM_HEAD, checkpoint_prefixes, input_amax, projection_names
from nanovl.quant.calibration_data import CalibrationRequest, synthetic_requests
from nanovl.quant.fp8_checkpoint import write_fp8_checkpoint

# what NVIDIA's FP8 releases keep in the model dtype (ModelOpt wildcards, recorded in the config)
VL_EXCLUDED = ("vision_model*", "mlp1*")


@dataclass(frozen=True)
class QuantizeReport:
    """What `quantize_checkpoint` did: the new folder, the calibrated amax by checkpoint prefix,
    the requests and tokens calibration ran, the weight files' bytes before and after, seconds."""

    dst: Path
    input_amax: dict[str, float]
    excluded: list[str]
    num_requests: int
    num_prompt_tokens: int
    num_generated_tokens: int
    bytes_before: int
    bytes_after: int
    seconds: float
    per_channel_per_token: bool = False

    def summary(self) -> str:
        """A few lines for the terminal."""
        mb = 1e6
        if self.per_channel_per_token:
            scheme = [f"quantized {len(self.input_amax)} projections to FP8 (e4m3 weights, a scale per output channel)",
                      "no calibration: inputs are scaled per token at run time"]
        else:
            scheme = [f"quantized {len(self.input_amax)} projections to FP8 (e4m3 weights, static per-tensor scales)",
                      f"calibrated on {self.num_requests} requests: {self.num_prompt_tokens} prompt + "
                      f"{self.num_generated_tokens} generated tokens"]
        return "\n".join([
            *scheme,
            f"kept in the model dtype: {', '.join(self.excluded)}",
            f"weights: {self.bytes_before / mb:.1f} MB -> {self.bytes_after / mb:.1f} MB "
            f"({self.bytes_after / max(self.bytes_before, 1):.2f}x)",
            f"wrote {self.dst} in {self.seconds:.1f} s"])


def check_paths(src: str | Path, dst: str | Path) -> Path:
    """The local folder of `src` (a folder or hub id) once both ends are usable; ValueError otherwise:
    `src` missing or already quantized, `dst` a file or a folder that holds a checkpoint already.
    Everything here runs before the model loads."""
    from nanovl.model.loader import read_config, resolve_checkpoint
    from nanovl.model.quantized import read_quantization

    dst = Path(dst)
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"destination {dst} is a file; give a new folder")
    if (dst / "config.json").exists():
        raise ValueError(f"destination {dst} already holds a checkpoint; choose a new folder")
    folder = resolve_checkpoint(src)
    if read_quantization(folder, read_config(folder)) is not None:
        raise ValueError(f"{src} is already quantized; quantize an unquantized (bf16/fp16/fp32) checkpoint")
    return folder


def load_for_calibration(folder: Path, *, device: str = "cpu", dtype: str = "auto", max_num_seqs: int = 8):
    """An LLM over the checkpoint whose every projection runs through its module's forward, so hooks
    see it: loaded on the CPU, where `load_model` fuses no q/k/v, then moved to `device`, and decoding
    eagerly (hooks do not run inside a CUDA-graph replay)."""
    from nanovl.engine.engine import EngineConfig, LLMEngine
    from nanovl.llm import LLM
    from nanovl.model.loader import load_model

    config = EngineConfig(model=str(folder), device=device, dtype=dtype, cuda_graphs=False,
                          decode_lookahead=False, max_num_seqs=max_num_seqs)
    model = load_model(folder, dtype=config.torch_dtype(), device="cpu").to(config.torch_device())
    return LLM(engine=LLMEngine(config, model=model))


def quantize_checkpoint(src: str | Path, dst: str | Path, *, requests: list[CalibrationRequest] | None = None,
                        num_samples: int = 32, seed: int = 0, device: str = "cpu", dtype: str = "auto",
                        max_num_seqs: int = 8, per_channel_per_token: bool = False) -> QuantizeReport:
    """Calibrate `src` and write its FP8 copy to `dst`. With `per_channel_per_token` (ModelOpt's
    FP8_PER_CHANNEL_PER_TOKEN: a weight scale per output channel, inputs scaled per token at run
    time) nothing is calibrated and the weights are never loaded.

    Args:
        src: an unquantized checkpoint folder or hub id.
        dst: a new folder (or an empty one).
        requests: calibration requests; None draws `num_samples` from the training curriculum
            (`calibration_data.synthetic_requests` with `seed`).
        device, dtype: where calibration runs ("auto" dtype: float32 on a CPU, bfloat16 on CUDA).
        max_num_seqs: calibration requests decoded together.
    Returns:
        a QuantizeReport. Raises ValueError for bad paths, a bad request or a projection no request reached.
    """
    from nanovl.devices import check_device

    t0 = time.perf_counter()
    check_device(device)
    folder = check_paths(src, dst)
    if per_channel_per_token:
        return _write_per_channel_per_token(folder, Path(dst), t0)
    llm = load_for_calibration(folder, device=device, dtype=dtype, max_num_seqs=max_num_seqs)
    model = llm.engine.model
    names = projection_names(model)
    prefixes = checkpoint_prefixes(model, folder, names)
    with tempfile.TemporaryDirectory(prefix="nanovl-calibration-") as workdir:
        if requests is None:
            requests = synthetic_requests(num_samples, workdir, seed=seed, text_only=not _is_vl(model))
        outputs = []
        amax = input_amax(model, names, lambda: outputs.extend(run_requests(llm, requests)))
    zero = [n for n in names if not amax[n] > 0]
    if zero:
        raise ValueError(f"calibration inputs of {zero[:4]} were all zero: no input scale can be set")
    # the model is loaded whole, so a VL model means a VL checkpoint: its LM keys carry the prefix
    excluded = ["language_model." + LM_HEAD, *VL_EXCLUDED] if _is_vl(model) else [LM_HEAD]
    by_prefix = {prefixes[n]: amax[n] for n in names}
    write_fp8_checkpoint(folder, dst, by_prefix, exclude=excluded)
    return QuantizeReport(Path(dst), by_prefix, excluded, len(requests),
                          sum(o.num_prompt_tokens for o in outputs), sum(o.num_generated_tokens for o in outputs),
                          weight_bytes(folder), weight_bytes(dst), time.perf_counter() - t0)


def _write_per_channel_per_token(folder: Path, dst: Path, t0: float) -> QuantizeReport:
    # the projections' names come from the model's structure, built on the meta device
    from nanovl.config import config_from_hf
    from nanovl.model.loader import build_on_meta, read_config

    model, _ = build_on_meta(folder, config_from_hf(read_config(folder)))
    names = projection_names(model)
    prefixes = checkpoint_prefixes(model, folder, names)
    excluded = ["language_model." + LM_HEAD, *VL_EXCLUDED] if _is_vl(model) else [LM_HEAD]
    by_prefix = {prefixes[n]: 0.0 for n in names}  # no input scales: the amax values go unused
    write_fp8_checkpoint(folder, dst, by_prefix, exclude=excluded, per_channel_per_token=True)
    return QuantizeReport(dst, by_prefix, excluded, 0, 0, 0, weight_bytes(folder), weight_bytes(dst),
                          time.perf_counter() - t0, per_channel_per_token=True)


def run_requests(llm, requests: list[CalibrationRequest]) -> list:
    """Every request's final output, greedy, the batch decoded together. A request the library refuses
    (its media, its length) raises ValueError naming the request's source."""
    def prompts():
        for r in requests:
            try:
                yield llm.processor.process_chat(r.messages, enable_thinking=r.enable_thinking), r.sampling_params()
            except ValueError as err:  # the library's request errors are ValueErrors (NanovlError too)
                raise ValueError(f"calibration request {r.source}: {err}") from None

    outputs = [None] * len(requests)
    for index, out in llm.generate_as_completed(prompts()):
        if isinstance(out, Exception):
            raise ValueError(f"calibration request {requests[index].source}: {out}")
        outputs[index] = out
    return outputs


def _is_vl(model: nn.Module) -> bool:
    return hasattr(model, "language_model")


def weight_bytes(folder: str | Path) -> int:
    """Bytes of a checkpoint folder's safetensors files."""
    return sum(f.stat().st_size for f in Path(folder).glob("*.safetensors"))
