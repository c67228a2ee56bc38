"""Benchmarks of nanovl's own model with random weights: LM prefill, decode (CUDA graphs on a GPU),
and time to first token for an image prompt and a video prompt with/without EVS."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from nanovl.bench.roofline import sync, timed
from nanovl.engine.cuda_graphs import DecodeCudaGraphs
from nanovl.model.loader import fuse_projections
from nanovl.model.presets import preset_config
from nanovl.model.vlm import NemotronVL


def build_model(preset: str, device: torch.device, dtype: torch.dtype, quant: str | None = None) -> NemotronVL:
    """The VL model with random weights, created directly on `device` in `dtype` (no CPU init).
    quant="fp8": the LM's projections but lm_head in e4m3 (as NVIDIA's FP8 release), their input
    scales calibrated on one random 64-token prompt."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = NemotronVL(preset_config(preset)).eval()
    finally:
        torch.set_default_dtype(prev)
    if quant == "fp8":
        from nanovl.quant.fp8_modules import quantize_projections_fp8

        lm = model.language_model
        ids = torch.randint(0, lm.config.vocab_size, (1, 64), device=device)
        with torch.inference_mode():
            quantize_projections_fp8(model, lambda: lm(ids, logits_to_keep=1))
    elif quant is not None:
        raise ValueError(f"quant must be None or 'fp8', got {quant!r}")
    return fuse_projections(model).eval()  # as load_model does


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


@torch.inference_mode()
def bench_prefill(model: NemotronVL, t_len: int, reps: int) -> dict:
    """One prompt of t_len random tokens from an empty state, logits of the last token."""
    lm = model.language_model
    dev = lm.backbone.embeddings.weight.device
    ids = torch.randint(0, lm.config.vocab_size, (1, t_len), device=dev)
    _peak_reset(dev)
    sec = timed(lambda: lm(ids, state=lm.new_state(1), logits_to_keep=1), dev, reps=reps)
    return {"tokens": t_len, "seconds": sec, "tok_per_s": t_len / sec, "peak_bytes": peak_bytes(dev)}


@torch.inference_mode()
def bench_decode(model: NemotronVL, batch: int, prompt_len: int, steps: int, *, graphs: bool) -> dict:
    """Greedy decode of `steps` tokens for `batch` rows after a batched prompt of prompt_len tokens."""
    lm = model.language_model
    dev = lm.backbone.embeddings.weight.device
    _peak_reset(dev)
    state = lm.new_state(batch)
    ids = torch.randint(0, lm.config.vocab_size, (batch, prompt_len), device=dev)
    tok = lm(ids, state=state, logits_to_keep=1)[:, -1].argmax(-1)
    if graphs:
        runner = DecodeCudaGraphs(lm, state, max_seq_len=prompt_len + 2 * steps + 8, buckets=(batch,))
        runner.capture()
        step = runner.step
    else:
        step = lambda t: lm(t[:, None], state=state, logits_to_keep=1)[:, -1]  # noqa: E731
    for _ in range(2):
        tok = step(tok).argmax(-1)
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        tok = step(tok).argmax(-1)
    sync(dev)
    sec = time.perf_counter() - t0
    return {"batch": batch, "steps": steps, "context": prompt_len + steps // 2, "step_seconds": sec / steps,
            "tok_per_s": batch * steps / sec, "cuda_graphs": graphs, "peak_bytes": peak_bytes(dev)}


# the bundled tiny model's tokenizer: the engine needs one; ids past its vocabulary decode to nothing
TINY_TOKENIZER = Path(__file__).resolve().parents[1] / "assets" / "tiny"


def engine_requests(model: NemotronVL, prompt_len: int, steps: int, *, batch: int,
                    sampled: bool) -> tuple[list[list[int]], list]:
    """`batch` random prompts of `prompt_len` tokens, each with the params of `steps` + 1 new tokens
    (EOS ignored): greedy, or with `sampled` the reasoning settings a chat user would send (a seeded
    top-p draw). The engine benchmark and bench/engine_step_profile.py time the same requests."""
    from nanovl.sampling_params import SamplingParams

    vocab = min(1000, model.language_model.config.vocab_size)
    prompts = [torch.randint(0, vocab, (prompt_len,)).tolist() for _ in range(batch)]
    params = [SamplingParams(temperature=0.6, top_p=0.95, seed=i, max_tokens=steps + 1, ignore_eos=True)
              if sampled else SamplingParams(temperature=0, max_tokens=steps + 1, ignore_eos=True)
              for i in range(batch)]
    return prompts, params


def bench_engine_decode(model: NemotronVL, prompt_len: int, steps: int, *, graphs: bool,
                        lookahead: bool = True, sampled: bool = False, batch: int = 1) -> dict:
    """`batch` greedy requests through LLMEngine at once, as `nanovl run` / `serve` decode them
    (scheduler, runner, sampler, detokenizer), on random prompts: tok/s of the decode steps once every
    request has its first token. The same requests run once before, untimed, so compiles and the
    graph capture stay outside."""
    from nanovl.engine.engine import EngineConfig, LLMEngine
    from nanovl.tokenizer import Tokenizer

    weight = model.language_model.backbone.embeddings.weight
    dev = weight.device
    config = EngineConfig(device=str(dev), dtype=str(weight.dtype).removeprefix("torch."), max_num_seqs=batch,
                          cuda_graphs=graphs, decode_lookahead=lookahead)
    engine = LLMEngine(config, model=model, tokenizer=Tokenizer.from_dir(TINY_TOKENIZER))
    prompts, params = engine_requests(model, prompt_len, steps, batch=batch, sampled=sampled)
    _peak_reset(dev)
    for timed_run in (False, True):
        for prompt, p in zip(prompts, params):
            engine.add_request(prompt, p)
        started, t0 = set(), None
        tokens_at_start = 0
        while engine.has_unfinished_requests():
            outs = engine.step()
            started |= {o.req_id for o in outs if o.token_ids}
            if t0 is None and len(started) == batch:  # every prompt's step is done: decode only from here
                tokens_at_start = sum(len(o.token_ids) for o in outs)
                sync(dev)
                t0 = time.perf_counter()
        sync(dev)
        sec = time.perf_counter() - t0
    decoded = batch * (steps + 1) - tokens_at_start
    runner = engine.runner
    return {"batch": batch, "steps": decoded // batch, "context": prompt_len + steps // 2,
            "step_seconds": sec * batch / decoded, "tok_per_s": decoded / sec, "cuda_graphs": graphs,
            "engine": True, "lookahead": lookahead, "sampled": sampled,
            "graph_steps": runner.num_graph_steps, "lookahead_steps": engine.num_lookahead_steps,
            "peak_bytes": peak_bytes(dev)}


def _ttft(model: NemotronVL, make_embeds) -> tuple[int, float]:
    """Embeds -> LM forward -> greedy first token on the host; returns (prompt tokens, seconds)."""
    lm = model.language_model
    t0 = time.perf_counter()
    embeds = make_embeds()
    first = lm(inputs_embeds=embeds, state=lm.new_state(1), logits_to_keep=1)[0, -1].argmax()
    int(first)
    return embeds.shape[1], time.perf_counter() - t0


def _prompt(model: NemotronVL, counts: list[int], text_per_item: int) -> torch.Tensor:
    """Random text ids with one block of `<image>` ids per item (after text_per_item text ids)."""
    cfg, dev = model.config, model.language_model.backbone.embeddings.weight.device
    hi = min(cfg.text.vocab_size, cfg.img_context_token_id)  # text ids below the image placeholder
    pieces = []
    for n in counts:
        pieces.append(torch.randint(16, hi, (text_per_item,)))
        pieces.append(torch.full((n,), cfg.img_context_token_id))
    pieces.append(torch.randint(16, hi, (16,)))
    return torch.cat(pieces)[None].to(dev)


@torch.inference_mode()
def bench_image_ttft(model: NemotronVL, n_tiles: int, reps: int) -> dict:
    """TTFT of one image of n_tiles tiles (pixels already on the device) plus a short question."""
    cfg = model.config
    dev = model.language_model.backbone.embeddings.weight.device
    dtype = model.mlp1[0].weight.dtype
    pixels = torch.randn(n_tiles, 3, cfg.force_image_size, cfg.force_image_size, device=dev, dtype=dtype)
    ids = _prompt(model, [n_tiles * cfg.num_image_token], 16)

    def make():
        return model.embed_inputs(ids, model.encode_images(pixels).flatten(0, 1))

    _peak_reset(dev)
    _ttft(model, make)
    runs = [_ttft(model, make) for _ in range(reps)]
    sec = sorted(r[1] for r in runs)[len(runs) // 2]
    return {"tiles": n_tiles, "prompt_tokens": runs[0][0], "seconds": sec, "peak_bytes": peak_bytes(dev)}


@torch.inference_mode()
def bench_video_ttft(model: NemotronVL, n_frames: int, q: float, reps: int) -> dict:
    """TTFT of a video of n_frames one-tile frames with EVS pruning rate q (vision + EVS + prefill)."""
    cfg = model.config
    dev = model.language_model.backbone.embeddings.weight.device
    dtype = model.mlp1[0].weight.dtype
    frames = torch.randn(n_frames, 3, cfg.force_image_size, cfg.force_image_size, device=dev, dtype=dtype)

    def make():
        kept, counts = model.encode_video(frames, q)
        return model.embed_inputs(_prompt(model, counts, 8), kept)

    _peak_reset(dev)
    _ttft(model, make)
    runs = [_ttft(model, make) for _ in range(reps)]
    sec = sorted(r[1] for r in runs)[len(runs) // 2]
    return {"frames": n_frames, "evs_q": q, "prompt_tokens": runs[0][0], "seconds": sec,
            "peak_bytes": peak_bytes(dev)}
