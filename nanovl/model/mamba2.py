"""Mamba2 mixer of the hybrid LM ('M' blocks, SPEC §2): in_proj -> causal conv -> SSD -> gated norm -> out_proj."""
from __future__ import annotations

import math

import torch
from torch import nn

from nanovl.config import TextConfig
from nanovl.model.linear import Linear
from nanovl.model.state import MambaLayerState
from nanovl.ops.conv1d import causal_conv1d, causal_conv1d_update
from nanovl.ops.norm import gated_rms_norm
from nanovl.ops.ssd import ssd_chunk_scan, ssd_state_update


class GatedRMSNorm(nn.Module):
    """Holds `weight` [d_inner] of the grouped gated RMSNorm (key `mixer.norm.weight`)."""

    def __init__(self, d_inner: int, n_groups: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_inner))
        self.n_groups, self.eps = n_groups, eps

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return gated_rms_norm(y, z, self.weight, self.n_groups, self.eps)


class Mamba2Mixer(nn.Module):
    """Mamba2 layer; attribute names match the checkpoint keys under `backbone.layers.N.mixer.`."""

    def __init__(self, config: TextConfig):
        super().__init__()
        c = config
        self.num_heads, self.head_dim = c.mamba_num_heads, c.mamba_head_dim
        self.n_groups, self.ssm_state_size = c.n_groups, c.ssm_state_size
        self.d_inner, self.conv_dim, self.chunk_size = c.d_inner, c.conv_dim, c.chunk_size
        self.dt_limit = c.time_step_limit
        # order: [z, xBC, dt]
        self.in_proj = Linear(c.hidden_size, c.in_proj_dim, bias=c.mamba_proj_bias)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, c.conv_kernel, groups=self.conv_dim,
                                padding=c.conv_kernel - 1, bias=c.use_conv_bias)
        self.dt_bias = nn.Parameter(torch.empty(self.num_heads))
        self.A_log = nn.Parameter(torch.empty(self.num_heads))
        self.D = nn.Parameter(torch.empty(self.num_heads))
        self.norm = GatedRMSNorm(self.d_inner, c.n_groups, c.layer_norm_epsilon)
        self.out_proj = Linear(self.d_inner, c.hidden_size, bias=c.mamba_proj_bias)
        self._decay_cache: tuple[tuple, torch.Tensor] | None = None
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4) -> None:
        """Mamba2 init of A_log, D, dt_bias (only used for freshly built, untrained models)."""
        if self.A_log.is_meta:
            return
        h = self.num_heads
        self.A_log.copy_(torch.log(torch.arange(1, h + 1, dtype=torch.float32)))
        self.D.fill_(1.0)
        dt = torch.exp(torch.rand(h) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        # inverse of softplus, so that softplus(dt_bias) == dt
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def decay_rates(self) -> torch.Tensor:
        """A = -exp(A_log) in fp32, [H].

        Without autograd it comes from a cache keyed on A_log's version, device and storage (so a
        load, `.to()` or in-place edit refreshes it): recomputed, it costs three tiny kernels per
        Mamba layer per decode step (84 of a 12B step's ~640). CUDA-graph capture runs an eager
        warm-up first, so the cache is filled before any capture reads it."""
        a_log = self.A_log
        if torch.is_grad_enabled() and a_log.requires_grad:
            return -torch.exp(a_log.float())
        # an inference tensor (built under inference_mode) keeps no version counter: its key is
        # storage alone, which every load and `.to()` changes (it is written in place only by a load
        # into the same storage before any forward)
        version = None if a_log.is_inference() else a_log._version
        key = (version, a_log.device, a_log.data_ptr(), a_log.dtype)
        if self._decay_cache is None or self._decay_cache[0] != key:
            # an ordinary tensor even under inference_mode, so later autograd-enabled calls may read it
            with torch.inference_mode(False), torch.no_grad():
                self._decay_cache = (key, -torch.exp(a_log.detach().float()))
        return self._decay_cache[1]

    def decode_weights(self) -> list[torch.Tensor]:
        """Projection weights in the order a decode step reads them."""
        return [self.in_proj.weight, self.out_proj.weight]

    def allocate_state(self, batch_size: int, *, dtype: torch.dtype, device) -> MambaLayerState:
        """Zero state: conv [B, conv_dim, K-1] in `dtype`, ssm [B, H, P, N] fp32."""
        k = self.conv1d.kernel_size[0]
        return MambaLayerState(
            conv=torch.zeros(batch_size, self.conv_dim, k - 1, dtype=dtype, device=device),
            ssm=torch.zeros(batch_size, self.num_heads, self.head_dim, self.ssm_state_size,
                            dtype=torch.float32, device=device))

    def forward(self, hidden: torch.Tensor, state: MambaLayerState | None) -> torch.Tensor:
        """hidden: [B, T, D] (already pre-normed); state updated in place. Returns [B, T, D].
        state None: a whole sequence from a zero state, nothing kept (training)."""
        bsz, t_len, _ = hidden.shape
        h, p, g, n = self.num_heads, self.head_dim, self.n_groups, self.ssm_state_size
        z, xbc, dt = self.in_proj(hidden).split([self.d_inner, self.conv_dim, h], dim=-1)
        A = self.decay_rates()  # [H]
        w = self.conv1d.weight[:, 0]  # [conv_dim, K]
        if t_len == 1 and state is not None:  # decode: one recurrent step; prefill: chunked scan over the prompt
            xbc = causal_conv1d_update(xbc[:, 0], state.conv, w, self.conv1d.bias)  # [B, conv_dim]
            x, B, C = xbc.split([self.d_inner, g * n, g * n], dim=-1)
            y = ssd_state_update(state.ssm, x.view(bsz, h, p), dt[:, 0], A, B.view(bsz, g, n),
                                 C.view(bsz, g, n), self.D, self.dt_bias, self.dt_limit)
        else:
            conv, ssm = (None, None) if state is None else (state.conv, state.ssm)
            xbc = causal_conv1d(xbc.transpose(1, 2), w, self.conv1d.bias, conv).transpose(1, 2)
            x, B, C = xbc.split([self.d_inner, g * n, g * n], dim=-1)
            y, final = ssd_chunk_scan(x.reshape(bsz, t_len, h, p), dt, A, B.reshape(bsz, t_len, g, n),
                                      C.reshape(bsz, t_len, g, n), self.chunk_size, self.D, self.dt_bias,
                                      ssm, self.dt_limit)
            if state is not None:
                state.ssm.copy_(final)
        y = self.norm(y.reshape(bsz, t_len, self.d_inner), z)
        return self.out_proj(y)
