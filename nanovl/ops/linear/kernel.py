"""Triton skinny GEMM for decode: y = x @ weight.T (+ bias) for 1..16 rows of x, streaming the weight once.

Same signature and shapes as `ref.py`. Each program owns BLOCK_N output features and loops over K in
BLOCK_K chunks with an fp32 accumulator. One row (the batch-1 decode step) multiplies and sums on the
CUDA cores; 2..16 rows pad to a 16-row tile and use tl.dot, since at 16 rows the CUDA cores could not
keep up with the weight stream. The first call per (one row or several, N, K, dtypes) autotunes, which
synchronises: make it before CUDA-graph capture (an eager warm-up step per batch size does); later calls
only launch.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from nanovl.ops.linear import MAX_ROWS, l2_prefetch
from nanovl.ops.pdl import launch_options, pdl_mode
from nanovl.ops.pdl_jit import pdl_release, pdl_wait


def _configs(table: list[tuple[int, int, int, int]]) -> list[triton.Config]:
    return [triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s) for n, k, w, s in table]


def _bench(fn, quantiles):
    # shorter than the autotuner's default (25 ms warm-up, 100 ms timing per config): ~10 shapes tune in seconds
    return triton.testing.do_bench(fn, warmup=5, rep=25, quantiles=quantiles)


# (BLOCK_N, BLOCK_K, num_warps, num_stages). Small BLOCK_N gives more programs (N=1024 still fills
# the SMs at 8); the fp32 accumulator tile is BLOCK_N * BLOCK_K / (32 * num_warps) registers a thread.
# On the H200 (2026-12-02) (8, 512, 4, 2) won five of seven decode shapes at 3.9-4.5 TB/s; the deeper
# and wider entries after it are there for the autotuner to try against it (more bytes in flight).
# The last three won shapes in bench/sweep_gemm_configs.py (H200, 2026-12-04): (4, 512, 4, 2) the
# out / down / q / o projections by 1-2.5%, (8, 1024, 8, 3) the k / v ones by 18%, (16, 512, 8, 2) in_proj
_GEMV_CONFIGS = _configs([(8, 512, 4, 2), (16, 512, 4, 2), (32, 256, 4, 2), (16, 1024, 8, 2), (64, 256, 8, 2),
                          (8, 512, 4, 4), (8, 1024, 4, 3), (8, 2048, 8, 2), (4, 1024, 4, 2),
                          (4, 512, 4, 2), (8, 1024, 8, 3), (16, 512, 8, 2)])
# shared memory is (16 + BLOCK_N) * BLOCK_K * itemsize per stage: every entry fits fp32 inputs too.
# The same sweep at 16 rows added (64, 128, 4, 3) (in_proj and the MLP's up projection, 7-8%) and
# (16, 256, 4, 4) (k / v, 9%); (64, 256, 4, 3), 2% on lm_head, would not fit fp32
_DOT_CONFIGS = _configs([(16, 512, 4, 3), (32, 256, 4, 4), (32, 512, 4, 2), (64, 256, 8, 2),
                         (64, 128, 4, 3), (16, 256, 4, 4)])


@triton.jit
def _prefetch_l2_share(pf, n_lines, VEC: tl.constexpr):
    """Ask L2 for this program's share of the first n_lines 128-byte lines at byte pointer `pf`
    (`l2_prefetch.py`: the next projection's weight). Fire and forget: nothing waits for the data."""
    per = tl.cdiv(n_lines, tl.num_programs(0))
    first = tl.program_id(0) * per
    for i in range(0, per, VEC):
        # past the end: the last line again (every lane runs the instruction; none may leave the tensor)
        line = tl.minimum(first + i + tl.arange(0, VEC), n_lines - 1)
        tl.inline_asm_elementwise("prefetch.global.L2::evict_last [$1];\n\tmov.u32 $0, 0;", "=r,l",
                                  [pf + line.to(tl.int64) * 128], dtype=tl.int32, is_pure=False, pack=1)


@triton.autotune(configs=_GEMV_CONFIGS, key=["N", "K", "FP8"], do_bench=_bench)
@triton.jit
def _gemv_fwd_kernel(x, w, b, out, ws, xs, N, K, stride_wn, pf, pf_lines,
                     HAS_BIAS: tl.constexpr, RELU_SQUARE: tl.constexpr, FP8: tl.constexpr, USE_PDL: tl.constexpr,
                     PREFETCH: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # one row: multiply into a [BLOCK_N, BLOCK_K] fp32 tile, reduce over K once at the end.
    # FP8: w is e4m3 with the scalar scale at ws; x is quantized to e4m3 with the scale at xs
    # (`ops/fp8_linear/ref.py`), and the sum takes both scales at the end
    pid = tl.program_id(0)
    offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_n = offs_n < N
    w_ptrs = w + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :]
    # the first tile is peeled: no kernel writes weights, so under PDL it is in flight while the
    # previous kernel finishes; x is that kernel's output and waits (without PDL: the same sums)
    pdl_release(USE_PDL)
    mask_k = offs_k < K
    wt = tl.load(w_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0.0, eviction_policy="evict_first")
    x_scale = 1.0
    inv_scale = 1.0
    if FP8:  # a checkpoint constant, like the weight: read before the wait
        x_scale = tl.load(xs)
        inv_scale = tl.math.div_rn(1.0, x_scale)  # IEEE, as torch.reciprocal
    pdl_wait(USE_PDL)
    xt = _x_tile(x + offs_k, mask_k, inv_scale, FP8)
    acc = wt.to(tl.float32) * xt[None, :]
    w_ptrs += BLOCK_K
    for k0 in range(BLOCK_K, K, BLOCK_K):
        mask_k = offs_k < K - k0
        wt = tl.load(w_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0.0, eviction_policy="evict_first")
        xt = _x_tile(x + k0 + offs_k, mask_k, inv_scale, FP8)
        acc += wt.to(tl.float32) * xt[None, :]
        w_ptrs += BLOCK_K
    y = tl.sum(acc, axis=1)  # [BLOCK_N]
    if FP8:
        y = y * (x_scale * tl.load(ws))
    if HAS_BIAS:
        y += tl.load(b + offs_n, mask=mask_n, other=0.0).to(tl.float32)
    if RELU_SQUARE:
        y = _relu_square_rounded(y, out.dtype.element_ty)
    tl.store(out + offs_n, y.to(out.dtype.element_ty), mask=mask_n)
    if PREFETCH:  # after the store: the small kernels before the next projection run meanwhile
        _prefetch_l2_share(pf, pf_lines, 128)


@triton.jit
def round_e4m3(v):
    """v (fp32, within +-448) rounded to the nearest e4m3 value, ties to even, kept in fp32.

    Spelled out in fp32 arithmetic rather than `.to(tl.float8e4nv)`: Triton's CPU interpreter, where
    the tests run, converts to fp8 wrongly at ties and at binade edges (200 -> 208, 127.7 -> 64),
    while this gives the GPU's and torch's result on both. Within a binade e4m3 values are spaced
    2**(e - 3); adding and removing 1.5 * 2**23 rounds v / spacing to an integer, ties to even."""
    biased = (v.to(tl.int32, bitcast=True) >> 23) & 0xFF
    biased = tl.maximum(biased, 121)  # under 2**-6, e4m3's subnormals: the spacing stays 2**-9
    step = ((biased - 3) << 23).to(tl.float32, bitcast=True)
    inv_step = ((257 - biased) << 23).to(tl.float32, bitcast=True)
    return ((v * inv_step + 12582912.0) - 12582912.0) * step


@triton.jit
def quantize_e4m3(v, inv_scale):
    """`quantize_fp8_ref` on an fp32 tile, kept in fp32: v * inv_scale, saturated, rounded to e4m3."""
    return round_e4m3(tl.clamp(v * inv_scale, -448.0, 448.0))


@triton.jit
def _x_tile(ptrs, mask, inv_scale, FP8: tl.constexpr):
    # a tile of x in fp32; quantized to e4m3 values for an FP8 weight
    xt = tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    if FP8:
        xt = quantize_e4m3(xt, inv_scale)
    return xt


@triton.jit
def _relu_square_rounded(y, dtype: tl.constexpr):
    # relu(y)^2 as the unfused pair computes it: the product rounds to the output dtype, then the
    # square (exact in fp32 for a bf16 / fp16 value) rounds again at the store
    y = tl.maximum(y.to(dtype).to(tl.float32), 0.0)
    return y * y


@triton.jit
def _dot_step(xt, wt, acc, IS_FP32: tl.constexpr):
    if IS_FP32:
        # full fp32 products, as F.linear computes them (tf32 would lose ~3 digits)
        acc = tl.dot(xt, tl.trans(wt), acc, input_precision="ieee")
    else:
        acc = tl.dot(xt, tl.trans(wt), acc)
    return acc


@triton.autotune(configs=_DOT_CONFIGS, key=["N", "K", "FP8"], do_bench=_bench)
@triton.jit(do_not_specialize=["M"])  # one binary for every M in 2..16 (16 would get its own)
def _skinny_dot_fwd_kernel(x, w, b, out, ws, xs, M, N, K, stride_xm, stride_wn, stride_om,
                           HAS_BIAS: tl.constexpr, RELU_SQUARE: tl.constexpr, IS_FP32: tl.constexpr,
                           FP8: tl.constexpr, USE_PDL: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # M <= BLOCK_M rows: rows past M load as zeros and are not stored. FP8 as in the one-row
    # kernel; e4m3 values are exact in fp16, so an fp16 tl.dot gives the fp8 products exactly
    pid = tl.program_id(0)
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m, mask_n = offs_m < M, offs_n < N
    x_ptrs = x + offs_m[:, None] * stride_xm + offs_k[None, :]
    w_ptrs = w + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    # as in the one-row kernel: the first weight tile is peeled and loads before the wait for x
    pdl_release(USE_PDL)
    mask_k = offs_k < K
    wt = tl.load(w_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0.0, eviction_policy="evict_first")
    x_scale = 1.0
    inv_scale = 1.0
    if FP8:
        x_scale = tl.load(xs)
        inv_scale = tl.math.div_rn(1.0, x_scale)
    pdl_wait(USE_PDL)
    xt = tl.load(x_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
    acc = _dot_tile(xt, wt, acc, inv_scale, IS_FP32, FP8)
    for k0 in range(BLOCK_K, K, BLOCK_K):
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
        mask_k = offs_k < K - k0
        xt = tl.load(x_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        wt = tl.load(w_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0.0, eviction_policy="evict_first")
        acc = _dot_tile(xt, wt, acc, inv_scale, IS_FP32, FP8)
    if FP8:
        acc = acc * (x_scale * tl.load(ws))
    if HAS_BIAS:
        acc += tl.load(b + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    if RELU_SQUARE:
        acc = _relu_square_rounded(acc, out.dtype.element_ty)
    out_ptrs = out + offs_m[:, None] * stride_om + offs_n[None, :]
    tl.store(out_ptrs, acc.to(out.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _dot_tile(xt, wt, acc, inv_scale, IS_FP32: tl.constexpr, FP8: tl.constexpr):
    # if / else, not an early return: compiled Triton also builds the statements after a returning
    # branch, and tl.dot refuses the e4m3 tile there
    if FP8:
        # fp16 holds every e4m3 value exactly (so does bf16, but Triton's interpreter mis-reads a
        # converted bf16 tile in tl.dot). Not an e4m3 dot: Hopper accumulates those in fewer than
        # fp32's bits
        xq = quantize_e4m3(xt.to(tl.float32), inv_scale).to(tl.float16)
        acc = _dot_step(xq, wt.to(tl.float32).to(tl.float16), acc, False)
    else:
        acc = _dot_step(xt, wt, acc, IS_FP32)
    return acc


def _launch(x2: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor,
            config: triton.Config | None = None, relu_square: bool = False,
            scales: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
    """Write x2 @ weight.T (+ bias), squared-ReLU'd if asked, into out; `config` pins one autotune
    entry (tests check each). `scales` = (weight_scale, input_scale) for an e4m3 weight."""
    (m, k), n = x2.shape, weight.shape[0]
    kernel = _gemv_fwd_kernel if m == 1 else _skinny_dot_fwd_kernel
    meta = {}
    if config is None and os.environ.get("TRITON_INTERPRET", "0") == "1":
        config = kernel.configs[0]  # the CPU interpreter cannot time configs
    if config is not None:
        kernel, meta = kernel.fn, config.all_kwargs()
    b = bias if bias is not None else out  # never read without HAS_BIAS
    ws, xs = scales if scales is not None else (out, out)  # never read without FP8
    fp8 = scales is not None

    def grid(args):
        return (triton.cdiv(n, args["BLOCK_N"]),)

    pdl = pdl_mode(x2)
    if m == 1:
        # Triton's interpreter runs no inline PTX; a prefetch changes no result, so it is left out there
        warm = None if os.environ.get("TRITON_INTERPRET", "0") == "1" else l2_prefetch.next_lines(weight)
        pf, pf_lines = warm if warm is not None else (weight, 0)
        kernel[grid](x2, weight, b, out, ws, xs, n, k, weight.stride(0), pf, pf_lines, HAS_BIAS=bias is not None,
                     RELU_SQUARE=relu_square, FP8=fp8, USE_PDL=pdl, PREFETCH=warm is not None,
                     **launch_options(pdl), **meta)
    else:
        kernel[grid](x2, weight, b, out, ws, xs, m, n, k, x2.stride(0), weight.stride(0), out.stride(0),
                     HAS_BIAS=bias is not None, RELU_SQUARE=relu_square,
                     IS_FP32=x2.dtype == torch.float32 and not fp8, FP8=fp8, USE_PDL=pdl,
                     BLOCK_M=MAX_ROWS, **launch_options(pdl), **meta)


def skinny_linear_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """y = x @ weight.T + bias, as `nn.Linear` computes it, for at most 16 rows of x (fp32 accumulation).
    See `_skinny` for the arguments."""
    return _skinny(x, weight, bias, relu_square=False)


def skinny_linear_relu_square_triton(x: torch.Tensor, weight: torch.Tensor,
                                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """relu(x @ weight.T + bias)^2 in one kernel (the MLP's up projection and its activation at decode)."""
    return _skinny(x, weight, bias, relu_square=True)


def _skinny(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, relu_square: bool,
            scales: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The projection for at most 16 rows of x, squared-ReLU'd if asked.

    Args:
        x: [..., K] bf16, fp16 or fp32, with prod(x.shape[:-1]) <= 16.
        weight: [N, K] (nn.Linear layout), same dtype as x; float8_e4m3fn when `scales` is given.
        bias: [N] or None, same dtype as x.
        scales: (weight_scale, input_scale), fp32 of one element each, for an e4m3 weight
            (`nanovl.ops.fp8_linear`).
    Returns:
        [..., N] in x's dtype.
    """
    n, k = weight.shape
    bad_bias = bias is not None and (bias.shape != (n,) or bias.dtype != x.dtype)
    want = torch.float8_e4m3fn if scales is not None else x.dtype
    bad_scales = scales is not None and any(s.numel() != 1 or s.dtype != torch.float32 for s in scales)
    if x.shape[-1] != k or weight.dtype != want or bad_bias or bad_scales:
        raise ValueError(f"skinny_linear: x {tuple(x.shape)} {x.dtype}, weight {tuple(weight.shape)} "
                         f"{weight.dtype}, bias {None if bias is None else tuple(bias.shape)} do not fit")
    x2 = x.reshape(x.shape[:-1].numel(), k)
    if x2.shape[0] > MAX_ROWS:
        raise ValueError(f"skinny_linear: {x2.shape[0]} rows of x, at most {MAX_ROWS}")
    x2 = x2 if x2.stride(-1) == 1 else x2.contiguous()
    weight = weight if weight.stride(-1) == 1 else weight.contiguous()
    bias = bias if bias is None or bias.stride(0) == 1 else bias.contiguous()
    out = torch.empty((x2.shape[0], n), dtype=x.dtype, device=x.device)
    if x2.shape[0] and n:
        _launch(x2, weight, bias, out, None, relu_square, scales)
    return out.view(*x.shape[:-1], n)
