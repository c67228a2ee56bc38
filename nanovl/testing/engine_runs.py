"""Engine test helpers: a tiny random VL checkpoint with its tokenizer, and a run of requests to the end."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nanovl.sampling_params import SamplingParams


def write_tiny_vl_checkpoint(root: Path) -> Path:
    """A random VL checkpoint of the tiny preset, 512-token vocabulary, with the tiny tokenizer; its folder."""
    from nanovl.testing.random_checkpoint import write_random_vl_checkpoint
    from nanovl.train.tokenizer import build_tiny_tokenizer

    tok_dir = build_tiny_tokenizer(Path(root) / "tok")
    return write_random_vl_checkpoint(Path(root) / "ckpt", tokenizer_dir=tok_dir,
                                      overrides={"llm_config": {"vocab_size": 512}})


def run_to_completion(engine, prompts: Sequence, params: SamplingParams | Sequence[SamplingParams]) -> list[list[int]]:
    """Queue every prompt (one SamplingParams for all, or one each), step the engine until all
    finish; the token ids of each, in prompt order."""
    each = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
    ids = [engine.add_request(p, sp) for p, sp in zip(prompts, each, strict=True)]
    finals = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                finals[out.req_id] = out.token_ids
    return [finals[i] for i in ids]
