"""Mamba2 SSD chunk scan on the CPU: the reference's math, chunks batched and laid out for matmuls.

The reference walks the prompt chunk by chunk through einsums over [B, T, G, R, ...] views, ~20
small ops a chunk, each permuting its operands. On a CPU at the shipped tiny model's shape the
op overhead is most of its time. Here every tensor is put head-major once ([B, H, chunk, L, .]),
so each step is one batched matmul or elementwise op over a block of chunks, and the state is
carried from block to block. Tests hold it to `ssd_chunk_scan_ref`.
"""
from __future__ import annotations

import math

import torch

from nanovl.ops.ssd.ref import _check, _dt, _own_copy, _scan_setup, ssd_state_update_ref

# Bytes of one [B, H, chunks, L, L] fp32 tensor in a block. Bounds the scratch memory (a few such
# tensors live at once) whatever the prompt length: the 12B shape (128 heads, 128-token chunks)
# gets 3-4 chunks a block, the tiny model hundreds.
BLOCK_BYTES = 32 << 20


def _block_scan(a: torch.Tensor, xdt: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nc chunks of L steps at once, entering with `state`.

    a: [b, H, nc, L] log-decays; xdt: [b, H, nc, L, P]; B, C: [b, G, 1, nc, L, N] (broadcast over
    the R heads of a group); state: [b, H, P, N]. Returns y [b, H, nc, L, P] and the leaving state.
    """
    bsz, n_heads, nc, size = a.shape
    g = B.shape[1]
    r = n_heads // g
    cum = a.cumsum(-1)  # [b, H, nc, L]
    # 1. within each chunk: y_t = sum_{s<=t} exp(cum_t - cum_s) (C_t.B_s) xdt_s
    cb = C @ B.transpose(-1, -2)  # [b, G, 1, nc, L(t), L(s)]
    seg = cum[..., :, None] - cum[..., None, :]  # [b, H, nc, L(t), L(s)]
    future = torch.ones(size, size, dtype=torch.bool, device=a.device).triu_(1)  # s > t
    decay = seg.masked_fill_(future, -math.inf).exp_()
    mix = (decay.view(bsz, g, r, nc, size, size) * cb).view(bsz, n_heads, nc, size, size)
    y = mix @ xdt  # [b, H, nc, L, P]
    # 2. each chunk's own contribution to the state, as if it entered at zero: sum_s to_end_s xdt_s B_s
    to_end = (cum[..., -1:] - cum).exp_()  # [b, H, nc, L]
    xdt_end = (xdt * to_end[..., None]).view(bsz, g, r, nc, size, -1)
    added = (xdt_end.transpose(-1, -2) @ B).view(bsz, n_heads, nc, -1, B.shape[-1])  # [b, H, nc, P, N]
    # 3. the state entering each chunk, chunk to chunk (nc small steps; nc + 1 states kept)
    total = cum[..., -1].exp()  # [b, H, nc] each chunk's whole decay
    states = [state]
    for c in range(nc):
        states.append(states[-1] * total[:, :, c, None, None] + added[:, :, c])
    entering = torch.stack(states[:-1], dim=2)  # [b, H, nc, P, N]
    # 4. what the entering state gives each step: exp(cum_t) C_t . state
    c_heads = C.expand(bsz, g, r, nc, size, C.shape[-1]).reshape(bsz, n_heads, nc, size, -1)
    y = y + (c_heads @ entering.transpose(-1, -2)) * cum.exp()[..., None]
    return y, states[-1]


def ssd_chunk_scan_cpu(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                       chunk_size: int, D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
                       initial_state: torch.Tensor | None = None,
                       dt_limit: tuple[float, float] = (0.0, math.inf)) -> tuple[torch.Tensor, torch.Tensor]:
    """`ssd_chunk_scan_ref` with the chunks batched (same shapes and chunking).

    Args:
        x: [B, T, H, P]; dt: [B, T, H] raw (before dt_bias and softplus); A: [H] (negative);
        B, C: [B, T, G, N]; chunk_size: tokens per chunk (T need not be a multiple);
        D: [H] or None; dt_bias: [H] or None; initial_state: [B, H, P, N] or None (zeros);
        dt_limit: (min, max) clamp of dt after softplus.
    Returns:
        y: [B, T, H, P] in x's dtype; final_state: [B, H, P, N] fp32.
    """
    bsz, t_len, n_heads, p = x.shape
    g, n, _, dt = _scan_setup(x, dt, B, chunk_size, dt_bias, dt_limit)  # dt: [B, T, H]
    state = (x.new_zeros(bsz, n_heads, p, n, dtype=torch.float32) if initial_state is None
             else _own_copy(initial_state))
    if t_len == 0:
        return x.new_zeros(x.shape), state
    a = (dt * A.float()).transpose(1, 2)  # [B, H, T]
    xdt = (x.float() * dt[..., None]).transpose(1, 2)  # [B, H, T, P]
    Bh, Ch = B.float().transpose(1, 2), C.float().transpose(1, 2)  # [B, G, T, N]
    per_block = max(1, BLOCK_BYTES // (4 * bsz * n_heads * chunk_size * chunk_size))
    ys = []
    s = 0
    while s < t_len:
        full = (t_len - s) // chunk_size
        size = chunk_size if full else t_len - s  # the last, shorter chunk runs as a block of its own
        nc = min(full, per_block) if full else 1
        e = s + nc * size

        def chunked(t: torch.Tensor) -> torch.Tensor:  # [.., T, ..] slice -> [.., nc, size, ..]
            return t[:, :, s:e].unflatten(2, (nc, size))

        y, state = _block_scan(chunked(a), chunked(xdt), chunked(Bh)[:, :, None], chunked(Ch)[:, :, None], state)
        ys.append(y.flatten(2, 3))
        s = e
    y = torch.cat(ys, dim=2).transpose(1, 2)  # [B, T, H, P]
    if D is not None:
        y = y + x.float() * D.float()[:, None]
    return y.to(x.dtype), state


def ssd_state_update_cpu(state: torch.Tensor, x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor,
                         B: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None = None,
                         dt_bias: torch.Tensor | None = None,
                         dt_limit: tuple[float, float] = (0.0, math.inf)) -> torch.Tensor:
    """`ssd_state_update_ref` (same shapes; the state updated IN PLACE) with the heads viewed as
    [groups, heads per group], so B and C broadcast instead of being repeated per head, and the
    state decays and grows in place instead of through a copy (a decode step's op count is most
    of its time on a CPU at the shipped model's size).

    Args:
        state: [B, H, P, N] fp32, updated IN PLACE.
        x: [B, H, P]; dt: [B, H] raw; A: [H]; B, C: [B, G, N]; D: [H] or None; dt_bias: [H] or None.
    Returns:
        y: [B, H, P] in x's dtype.
    """
    if state.dtype != torch.float32 or not state.is_contiguous():
        return ssd_state_update_ref(state, x, dt, A, B, C, D, dt_bias, dt_limit)
    bsz, n_heads, p = x.shape
    g = _check(x, B, n_heads)
    n = B.shape[-1]
    dt = _dt(dt, dt_bias, dt_limit)  # [B, H]
    grouped = state.view(bsz, g, n_heads // g, p, n)
    grouped.mul_(torch.exp(dt * A.float()).view(bsz, g, -1, 1, 1))
    grouped.addcmul_((x.float() * dt[..., None]).view(bsz, g, -1, p, 1), B.float().view(bsz, g, 1, 1, n))
    # a multiply and a sum: ~3x faster here than a batched matmul of [P, N] @ [N, 1] per head
    y = (grouped * C.float().view(bsz, g, 1, 1, n)).sum(-1).view(bsz, n_heads, p)
    if D is not None:
        y = y + x.float() * D.float()[:, None]
    return y.to(x.dtype)
