"""Triton causal depthwise conv1d (+bias, +SiLU): the prompt pass and the one-token decode step.

Same signatures and shapes as `ref.py`. Imported lazily by the dispatcher, so `import triton`
here never runs on a CPU-only install.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from nanovl.ops.pdl import launch_options, pdl_mode
from nanovl.ops.pdl_jit import pdl_release, pdl_wait


@triton.jit
def _causal_conv1d_fwd_kernel(x, w, bias, state, out, C, T,
                              sx_b, sx_c, sx_t, ss_b, ss_c, ss_k, so_b, so_c, so_t,
                              KW: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_STATE: tl.constexpr,
                              SILU: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_b, pid_c, pid_t = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    mask_c = offs_c < C
    acc = tl.zeros((BLOCK_T, BLOCK_C), dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias + offs_c, mask=mask_c, other=0.0).to(tl.float32)[None, :]
    for k in tl.static_range(KW):
        # tap k reads input time t - (KW-1) + k; negative times come from the state (history)
        src_t = offs_t - (KW - 1) + k
        in_x = (src_t >= 0) & (src_t < T)
        v = tl.load(x + pid_b * sx_b + offs_c[None, :] * sx_c + src_t[:, None] * sx_t,
                    mask=in_x[:, None] & mask_c[None, :], other=0.0).to(tl.float32)
        if HAS_STATE:
            hist = (src_t < 0) & (src_t >= -(KW - 1)) & (offs_t < T)
            hv = tl.load(state + pid_b * ss_b + offs_c[None, :] * ss_c + (src_t + KW - 1)[:, None] * ss_k,
                         mask=hist[:, None] & mask_c[None, :], other=0.0).to(tl.float32)
            v += hv
        wk = tl.load(w + offs_c * KW + k, mask=mask_c, other=0.0).to(tl.float32)
        acc += v * wk[None, :]
    if SILU:
        acc = acc / (1.0 + tl.exp(-acc))
    tl.store(out + pid_b * so_b + offs_c[None, :] * so_c + offs_t[:, None] * so_t,
             acc.to(out.dtype.element_ty), mask=(offs_t < T)[:, None] & mask_c[None, :])


def causal_conv1d_triton(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                         conv_state: torch.Tensor | None = None, activation: str | None = "silu") -> torch.Tensor:
    """Causal depthwise conv over time, starting from `conv_state` (zeros when None).

    Args:
        x: [B, C, T] inputs (may be a transposed view of [B, T, C]; channel-contiguous is fastest).
        weight: [C, K]; bias: [C] or None.
        conv_state: [B, C, K-1] inputs before x[..., 0]; updated IN PLACE to the last K-1 inputs.
        activation: "silu" or None.
    Returns:
        [B, C, T] in x's dtype, laid out as a transposed [B, T, C] buffer.
    """
    if activation not in (None, "silu"):
        raise ValueError(f"causal_conv1d: unsupported activation {activation!r} (expected 'silu' or None)")
    b, c, t = x.shape
    k = weight.shape[-1]
    if weight.shape != (c, k):
        raise ValueError(f"causal_conv1d: weight shape {tuple(weight.shape)} does not match x channels {c}")
    if conv_state is not None and conv_state.shape != (b, c, k - 1):
        raise ValueError(f"causal_conv1d: conv_state shape {tuple(conv_state.shape)} != {(b, c, k - 1)}")
    w = weight.contiguous()
    out = torch.empty(b, t, c, dtype=x.dtype, device=x.device).transpose(1, 2)  # [B, C, T]
    st = conv_state if conv_state is not None else x  # dummy pointer when there is no state
    block_c, block_t = 128, 32
    grid = (b, triton.cdiv(c, block_c), triton.cdiv(t, block_t))
    _causal_conv1d_fwd_kernel[grid](
        x, w, bias if bias is not None else w, st, out, c, t,
        x.stride(0), x.stride(1), x.stride(2), st.stride(0), st.stride(1), st.stride(-1),
        out.stride(0), out.stride(1), out.stride(2),
        KW=k, HAS_BIAS=bias is not None, HAS_STATE=conv_state is not None and k > 1,
        SILU=activation == "silu", BLOCK_T=block_t, BLOCK_C=block_c, num_warps=4)
    if conv_state is not None and k > 1:
        # after the kernel (stream order): the new history is the last K-1 inputs of state ++ x
        if t >= k - 1:
            conv_state.copy_(x[:, :, t - (k - 1):])
        else:
            conv_state.copy_(torch.cat([conv_state, x.to(conv_state.dtype)], dim=-1)[:, :, t:])
    return out


@triton.jit
def _column(tile, j: tl.constexpr, KWP: tl.constexpr):
    """Column j of a [BLOCK_C, KWP] tile (exact: the other entries add as zeros)."""
    return tl.sum(tl.where(tl.arange(0, KWP)[None, :] == j, tile, 0.0), axis=1)


@triton.jit
def _causal_conv1d_update_kernel(x, w, bias, state, out, C,
                                 sx_b, ss_b, ss_c, ss_k, so_b,
                                 KW: tl.constexpr, KWP: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr,
                                 USE_PDL: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_b, pid_c = tl.program_id(0), tl.program_id(1)
    offs_c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_k = tl.arange(0, KWP)  # the taps, padded to a power of two
    mask = offs_c < C
    # the weights and bias are no kernel's output: they load before the wait (under PDL while the
    # previous kernel finishes); the whole history loads at once after it, not tap by tap between
    # the shifting stores (a load is never moved past a store: each tap would cost a round trip)
    pdl_release(USE_PDL)
    wt = tl.load(w + offs_c[:, None] * KW + offs_k[None, :], mask=mask[:, None] & (offs_k < KW)[None, :],
                 other=0.0).to(tl.float32)
    if HAS_BIAS:
        bv = tl.load(bias + offs_c, mask=mask, other=0.0).to(tl.float32)
    pdl_wait(USE_PDL)  # x is the previous kernel's output, and the state is written below
    xv = tl.load(x + pid_b * sx_b + offs_c, mask=mask, other=0.0)
    sp = state + pid_b * ss_b + offs_c * ss_c
    hist = tl.load(sp[:, None] + offs_k[None, :] * ss_k, mask=mask[:, None] & (offs_k < KW - 1)[None, :], other=0.0)
    # the sums in the reference's order: the newest tap (and bias) first, then the history oldest first
    acc = xv.to(tl.float32) * _column(wt, KW - 1, KWP)
    if HAS_BIAS:
        acc += bv
    hist32 = hist.to(tl.float32)
    for k in tl.static_range(KW - 1):
        acc += _column(hist32, k, KWP) * _column(wt, k, KWP)
    # shift the history left by one and append x
    for k in tl.static_range(KW - 2):
        tl.store(sp + k * ss_k, _column(hist, k + 1, KWP).to(state.dtype.element_ty), mask=mask)
    tl.store(sp + (KW - 2) * ss_k, xv.to(state.dtype.element_ty), mask=mask)
    if SILU:
        acc = acc / (1.0 + tl.exp(-acc))
    tl.store(out + pid_b * so_b + offs_c, acc.to(out.dtype.element_ty), mask=mask)


def causal_conv1d_update_triton(x: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor,
                                bias: torch.Tensor | None = None, activation: str | None = "silu") -> torch.Tensor:
    """One decode step of the causal conv.

    Args:
        x: [B, C] the new input column (last dim contiguous).
        conv_state: [B, C, K-1] previous inputs; updated IN PLACE (shifted left, x appended).
        weight: [C, K]; bias: [C] or None; activation: "silu" or None.
    Returns:
        [B, C] in x's dtype.
    """
    if activation not in (None, "silu"):
        raise ValueError(f"causal_conv1d_update: unsupported activation {activation!r}")
    b, c = x.shape
    k = weight.shape[-1]
    if k < 2:
        return causal_conv1d_triton(x[:, :, None], weight, bias, None, activation)[:, :, 0]
    if x.stride(-1) != 1:
        x = x.contiguous()
    w = weight.contiguous()
    out = torch.empty(b, c, dtype=x.dtype, device=x.device)
    block_c = 256
    pdl = pdl_mode(x)
    _causal_conv1d_update_kernel[(b, triton.cdiv(c, block_c))](
        x, w, bias if bias is not None else w, conv_state, out, c,
        x.stride(0), conv_state.stride(0), conv_state.stride(1), conv_state.stride(2), out.stride(0),
        KW=k, KWP=triton.next_power_of_2(k), HAS_BIAS=bias is not None, SILU=activation == "silu", USE_PDL=pdl,
        BLOCK_C=block_c, num_warps=4,
        **launch_options(pdl))
    return out
