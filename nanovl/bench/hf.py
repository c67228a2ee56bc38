"""The same LM-only workloads on transformers' NemotronHForCausalLM (random weights, built on the device)."""
from __future__ import annotations

import time

import torch

from nanovl.bench.roofline import sync, timed
from nanovl.model.presets import preset_text_hf_config


def build_hf(preset: str, device: torch.device, dtype: torch.dtype):
    """transformers' NemotronHForCausalLM from a NemotronHConfig of the preset, created on `device`."""
    from transformers import NemotronHConfig, NemotronHForCausalLM

    cfg = NemotronHConfig(**preset_text_hf_config(preset))
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = NemotronHForCausalLM(cfg)
    finally:
        torch.set_default_dtype(prev)
    return model.to(dtype).eval()


def _oom(e: Exception) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


@torch.inference_mode()
def hf_prefill(model, t_len: int, reps: int, warmup: int = 1) -> dict:
    dev = next(model.parameters()).device
    ids = torch.randint(0, model.config.vocab_size, (1, t_len), device=dev)
    try:
        sec = timed(lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1), dev, reps=reps, warmup=warmup)
    except Exception as e:  # a baseline that cannot run is reported, not fatal
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        return {"tokens": t_len, "error": "out of memory" if _oom(e) else f"{type(e).__name__}: {e}"[:200]}
    return {"tokens": t_len, "seconds": sec, "tok_per_s": t_len / sec}


@torch.inference_mode()
def hf_decode(model, batch: int, prompt_len: int, new_tokens: int) -> dict:
    """Decode rate from generate(): (tokens after the first) / (time beyond a 1-token generate)."""
    dev = next(model.parameters()).device
    ids = torch.randint(16, model.config.vocab_size, (batch, prompt_len), device=dev)
    mask = torch.ones_like(ids)

    def gen(n: int) -> float:
        sync(dev)
        t0 = time.perf_counter()
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                       do_sample=False, pad_token_id=0)
        sync(dev)
        return time.perf_counter() - t0

    try:
        gen(2)
        t1, tn = gen(1), gen(new_tokens)
    except Exception as e:
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        return {"batch": batch, "error": "out of memory" if _oom(e) else f"{type(e).__name__}: {e}"[:200]}
    if tn <= t1:
        return {"batch": batch, "error": f"timing noise: {new_tokens} tokens took no longer than 1"}
    return {"batch": batch, "new_tokens": new_tokens, "step_seconds": (tn - t1) / (new_tokens - 1),
            "tok_per_s": batch * (new_tokens - 1) / (tn - t1)}
