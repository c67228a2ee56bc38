"""RMSNorm and the grouped gated RMSNorm vs formulas written per group (CPU)."""
from __future__ import annotations

import pytest
import torch

from helpers import assert_close
from nanovl.ops.norm import add_rms_norm, gated_rms_norm, rms_norm


def test_rms_norm():
    x, w = torch.randn(2, 5, 16), torch.randn(16)
    ref = w.double() * x.double() / (x.double().pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    assert_close("rms_norm", ref, rms_norm(x, w, 1e-5))
    out = rms_norm(x.bfloat16(), w.bfloat16(), 1e-5)
    assert out.dtype == torch.bfloat16
    assert_close("rms_norm_bf16", ref, out, atol=5e-2, rtol=2e-2)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_gated_rms_norm(groups):
    d = 24
    x, z, w = torch.randn(3, 2, d), torch.randn(3, 2, d), torch.randn(d)
    u = x.double() * z.double() * torch.sigmoid(z.double())
    size = d // groups
    ref = torch.empty_like(u)
    for grp in range(groups):
        seg = u[..., grp * size:(grp + 1) * size]
        ref[..., grp * size:(grp + 1) * size] = seg / (seg.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    ref = ref * w.double()
    assert_close("gated_rms_norm", ref, gated_rms_norm(x, z, w, groups, 1e-5))


def test_gated_rms_norm_groups_matter():
    x, z, w = torch.randn(2, 8), torch.randn(2, 8), torch.ones(8)
    assert (gated_rms_norm(x, z, w, 1, 1e-5) - gated_rms_norm(x, z, w, 4, 1e-5)).abs().max() > 1e-3


def test_gated_rms_norm_bad_groups():
    with pytest.raises(ValueError, match="n_groups"):
        gated_rms_norm(torch.randn(2, 10), torch.randn(2, 10), torch.ones(10), 3, 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_add_rms_norm_equals_the_add_then_the_norm(dtype):
    x, res, w = torch.randn(3, 4, 32, dtype=dtype), torch.randn(3, 4, 32, dtype=dtype), torch.randn(32)
    normed, summed = add_rms_norm(x, res, w, 1e-5)
    assert torch.equal(summed, res + x)
    assert torch.equal(normed, rms_norm(res + x, w, 1e-5))
