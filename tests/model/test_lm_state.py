"""LMState bookkeeping: shapes per layer kind, snapshot independence, select/cat, KV growth (CPU)."""
from __future__ import annotations

import pytest
import torch

from nanovl.config import TextConfig
from nanovl.model.hybrid_lm import NemotronHForCausalLM
from nanovl.model.state import AttentionLayerState, LMState, MambaLayerState

CFG = TextConfig(vocab_size=50, hidden_size=32, pattern="M*-", num_attention_heads=4, num_key_value_heads=2,
                 head_dim=8, intermediate_size=40, mamba_num_heads=4, mamba_head_dim=8, ssm_state_size=6,
                 n_groups=2, conv_kernel=3, chunk_size=4)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return NemotronHForCausalLM(CFG).eval()


def test_new_state_shapes(model):
    st = model.new_state(3, dtype=torch.bfloat16)
    mamba, attn, mlp = st.layers
    assert isinstance(mamba, MambaLayerState) and isinstance(attn, AttentionLayerState) and mlp is None
    assert mamba.conv.shape == (3, CFG.conv_dim, CFG.conv_kernel - 1) and mamba.conv.dtype == torch.bfloat16
    assert mamba.ssm.shape == (3, 4, 8, 6) and mamba.ssm.dtype == torch.float32
    assert attn.k.shape == (3, 2, 0, 8) and st.seq_lens.tolist() == [0, 0, 0] and st.batch_size == 3


@torch.no_grad()
def test_snapshot_is_independent(model):
    st = model.new_state(1)
    model(torch.tensor([[1, 2, 3]]), state=st)
    snap = st.snapshot()
    before = snap.layers[0].ssm.clone()
    model(torch.tensor([[4]]), state=st)
    assert torch.equal(snap.layers[0].ssm, before) and not torch.equal(st.layers[0].ssm, before)
    assert snap.seq_lens.tolist() == [3] and st.seq_lens.tolist() == [4]


@torch.no_grad()
def test_restore_after_kv_growth(model):
    st = model.new_state(1)
    model(torch.tensor([[1, 2]]), state=st)
    snap = st.snapshot()
    model(torch.arange(30).view(1, 30) % 50, state=st)  # grows the KV cache past the snapshot's capacity
    st.restore(snap)
    assert st.layers[1].k.shape == snap.layers[1].k.shape and st.seq_lens.tolist() == [2]
    with pytest.raises(ValueError, match="restore"):
        st.restore(model.new_state(2))


def test_kv_write_at_row_offsets():
    kv = AttentionLayerState(torch.zeros(2, 1, 0, 2), torch.zeros(2, 1, 0, 2))
    k_new = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 1, 3, 2)
    kv.write(k_new, -k_new, torch.tensor([0, 4]))
    assert kv.capacity >= 7
    assert torch.equal(kv.k[0, 0, :3], k_new[0, 0]) and torch.equal(kv.k[1, 0, 4:7], k_new[1, 0])
    assert torch.equal(kv.v[1, 0, 4:7], -k_new[1, 0]) and kv.k[1, 0, :4].abs().sum() == 0


@torch.no_grad()
def test_cat_and_select_roundtrip(model):
    a, b = model.new_state(1), model.new_state(2)
    model(torch.tensor([[1, 2, 3, 4, 5]]), state=a)
    model(torch.tensor([[6, 7], [8, 9]]), state=b)
    both = LMState.cat([a, b])
    assert both.batch_size == 3 and both.seq_lens.tolist() == [5, 2, 2]
    assert a.layers[1].capacity == a.layers[1].k.shape[2], "cat must not modify its inputs"
    back = both.select([1, 2])
    assert torch.equal(back.layers[0].ssm, b.layers[0].ssm) and torch.equal(back.seq_lens, b.seq_lens)
    assert torch.equal(back.layers[1].k[:, :, :2], b.layers[1].k[:, :, :2])
    assert both.nbytes() > 0
    with pytest.raises(ValueError, match="empty"):
        LMState.cat([])
