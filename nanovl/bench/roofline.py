"""Rooflines: the device's measured copy bandwidth and matmul rate, and the bytes/FLOPs each
benchmarked workload must move or compute (weights, states, caches; linear layers, attention, SSD)."""
from __future__ import annotations

import time

import torch

from nanovl.config import TextConfig, VLConfig


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, *, reps: int = 5, warmup: int = 1) -> float:
    """Median wall seconds of `fn()` over `reps` runs (device synchronized around each)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def measure_device(device: torch.device, dtype: torch.dtype, fp8: bool = False) -> dict[str, float]:
    """Copy bandwidth (bytes read + written per second) and dense matmul rate (FLOP/s) in `dtype`;
    with `fp8` on a GPU also the e4m3 GEMM rate (`_scaled_mm`, what FP8 projections run on)."""
    big = device.type == "cuda"
    n_bytes = (1 << 31) if big else (1 << 27)
    src = torch.randn(n_bytes // 4, device=device)
    dst = torch.empty_like(src)
    n = 8192 if big else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    if big:
        t_copy = timed(lambda: dst.copy_(src), device, reps=10)
        t_mm = timed(lambda: a @ b, device, reps=10)
    else:
        # a shared CPU's median of a few runs can read half its rate (96 against 168 GFLOP/s one
        # hour apart): a roofline below what the machine then beat. The best of more runs bounds it.
        t_copy = min(timed(lambda: dst.copy_(src), device, reps=1, warmup=0) for _ in range(7))
        t_mm = min(timed(lambda: a @ b, device, reps=1, warmup=0) for _ in range(15))
    del src, dst
    caps = {"copy_bytes_per_s": 2 * n_bytes / t_copy, "matmul_flop_per_s": 2 * n ** 3 / t_mm}
    if fp8 and big:
        a8, b8 = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn).t()  # cuBLASLt wants B column-major
        one = torch.tensor(1.0, device=device)
        t_mm8 = timed(lambda: torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=dtype), device, reps=10)
        caps["fp8_matmul_flop_per_s"] = 2 * n ** 3 / t_mm8
    return caps


def lm_linear_shapes(c: TextConfig) -> list[tuple[str, int, int]]:
    """The distinct projection shapes of a decode step, (name, N, K) with the weight [N, K] as
    nn.Linear holds it; attention's q and o share one shape, k and v another."""
    d, q, kv = c.hidden_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    return [("mamba in_proj", c.in_proj_dim, d), ("mamba out_proj", d, c.d_inner),
            ("mlp up", c.intermediate_size, d), ("mlp down", d, c.intermediate_size),
            ("attn q / o", q, d), ("attn k / v", kv, d), ("lm_head", c.vocab_size, d)]


def lm_linear_params(c: TextConfig) -> dict[str, int]:
    """Weights of the LM by role: per-token linear layers (`body`), `lm_head`, `embeddings`, `other`."""
    d = c.hidden_size
    body = other = 0
    for kind in c.pattern:
        other += d  # block norm
        if kind == "M":
            body += d * c.in_proj_dim + c.d_inner * d
            other += c.conv_dim * (c.conv_kernel + 1) + 3 * c.mamba_num_heads + c.d_inner
        elif kind == "*":
            q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
            body += d * (q + 2 * kv) + q * d
        else:
            body += 2 * d * c.intermediate_size
    return {"body": body, "lm_head": c.vocab_size * d, "embeddings": c.vocab_size * d, "other": other + d}


def lm_prefill_flops(c: TextConfig, t_len: int, *, ssd_chunk: int = 64) -> float:
    """FLOPs of one prompt of t_len tokens with logits for the last token only."""
    p = lm_linear_params(c)
    flops = 2.0 * t_len * p["body"] + 2.0 * p["lm_head"]
    n_attn, n_mamba = c.pattern.count("*"), c.pattern.count("M")
    # causal attention: q.k and p.v over half the square
    flops += n_attn * 2.0 * t_len * t_len * c.num_attention_heads * c.head_dim
    h, hp, n = c.mamba_num_heads, c.mamba_head_dim, c.ssm_state_size
    # chunked SSD: state in/out per token + the intra-chunk (C.B) and (.x) products
    flops += n_mamba * t_len * (4.0 * h * hp * n + 2.0 * ssd_chunk * h * (n + hp))
    return flops


def lm_decode_bytes(c: TextConfig, batch: int, context: int, dtype_bytes: int = 2,
                    body_bytes: int | None = None) -> float:
    """Bytes one decode step must move: every weight once, plus each row's state read and written
    and its KV cache read (context tokens). `body_bytes`: bytes per weight of the per-token
    projections when they differ from `dtype_bytes` (1 for FP8; lm_head stays in the model dtype)."""
    p = lm_linear_params(c)
    weights = p["body"] * (body_bytes or dtype_bytes) + (p["lm_head"] + p["other"]) * dtype_bytes
    n_mamba, n_attn = c.pattern.count("M"), c.pattern.count("*")
    ssm = c.mamba_num_heads * c.mamba_head_dim * c.ssm_state_size * 4
    conv = c.conv_dim * (c.conv_kernel - 1) * dtype_bytes
    kv = 2 * c.num_key_value_heads * c.head_dim * dtype_bytes * context
    return weights + batch * (n_mamba * 2 * (ssm + conv) + n_attn * kv)


def lm_prefill_roofline_seconds(c: TextConfig, t_len: int, caps: dict[str, float], fp8: bool = False) -> float:
    """The fewest seconds a prompt of t_len tokens can take at the measured matmul rates: with `fp8`
    the per-token projections at the e4m3 GEMM rate, the rest (lm_head, attention, scan) at the
    model dtype's."""
    flops = lm_prefill_flops(c, t_len)
    if not fp8:
        return flops / caps["matmul_flop_per_s"]
    body = 2.0 * t_len * lm_linear_params(c)["body"]
    # a CPU has no e4m3 GEMM: the reference multiplies the upcast values at the float rate
    fp8_rate = caps.get("fp8_matmul_flop_per_s", caps["matmul_flop_per_s"])
    return body / fp8_rate + (flops - body) / caps["matmul_flop_per_s"]


def vision_flops(c: VLConfig, n_tiles: int) -> float:
    """FLOPs of the ViT + pixel shuffle projector for n_tiles tiles."""
    v = c.vision
    grid = c.force_image_size // v.patch_size
    t = grid * grid + (v.num_prefix_tokens or 0)
    d = v.hidden_size
    per_block = 2.0 * t * (4 * d * d + 2 * d * v.intermediate_size) + 4.0 * t * t * d
    embed = 2.0 * grid * grid * v.num_channels * v.patch_size ** 2 * d
    tokens = c.num_image_token
    proj = 2.0 * tokens * (4 * d * c.projector_hidden_size + c.projector_hidden_size * c.text.hidden_size)
    return n_tiles * (v.num_hidden_layers * per_block + embed + proj)
