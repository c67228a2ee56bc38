"""Training op mode (CPU): `use_training_ops()` never cuts a gradient and matches the reference path.

GPU kernels are simulated: every op "has a kernel"; the forward-only ones are the reference run
under no_grad (outputs without grad_fn, like a Triton launcher), the scan's training launcher is
the real fla adapter over a torch simple-GLA stand-in for fla's autograd kernel.

    pytest tests/train/test_training_ops.py -q
"""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from helpers import assert_close
from nanovl.model.presets import preset_config
from nanovl.ops import dispatch
from nanovl.ops.ssd import fla_adapter
from nanovl.train.recipe import new_model


def _simple_gla(q, k, v, g, initial_state):
    """Token-by-token simple GLA with state [B, H, P, N] (fla's chunk_simple_gla, state_v_first)."""
    bsz, t_len, h, n = q.shape
    state = (torch.zeros(bsz, h, v.shape[-1], n) if initial_state is None else initial_state.float())
    ys = []
    for t in range(t_len):
        state = state * g[:, t].exp()[..., None, None] + v[:, t].float()[..., None] * k[:, t].float()[:, :, None]
        ys.append(torch.einsum("bhpn,bhn->bhp", state, q[:, t].float()))
    return torch.stack(ys, 1).to(v.dtype), state


class _FakeKernels:
    def __init__(self, package: str, calls: list[str]):
        self.pkg, self.calls = importlib.import_module(package), calls

    def __getattr__(self, name: str):
        if name == "chunk_scan_available":
            return lambda: True
        if name == "ssd_chunk_scan_autograd":
            def train(x, dt, A, B, C, chunk_size, D, dt_bias, initial_state, dt_limit):
                self.calls.append(name)
                return fla_adapter.ssd_chunk_scan_fla(x, dt, A, B, C, D, dt_bias, initial_state, dt_limit)
            return train
        ref = getattr(self.pkg, name.replace("_triton", "_ref"))

        def forward_only(*args):
            self.calls.append(name)
            with torch.no_grad():
                return ref(*args)
        return forward_only


@pytest.fixture
def fake_gpu(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(dispatch, "use_kernel", lambda op, *t: not dispatch._forced_ref() and op not in dispatch._failed)
    monkeypatch.setattr(dispatch, "kernel_module", lambda package: _FakeKernels(package, calls))
    monkeypatch.setattr(dispatch, "_on_cpu", lambda tensors: False)  # as if the tensors could take kernels
    monkeypatch.setattr(dispatch, "_failed", {})
    monkeypatch.setattr(fla_adapter, "simple_gla", _simple_gla)
    return calls


def _model_and_batch():
    cfg = preset_config("tiny")
    model = new_model(cfg, 0)
    gen = torch.Generator().manual_seed(0)
    size = cfg.force_image_size
    pixels = torch.randn(2, 3, size, size, generator=gen)  # one tile per row
    # 41 tokens: two full scan chunks of 16 and a shorter one
    ids = torch.randint(0, 300, (2, 41), generator=gen)
    ids[:, 3:3 + cfg.num_image_token] = cfg.img_context_token_id
    labels = torch.randint(0, 300, (2, 41), generator=gen)
    return model, (pixels, ids, labels)


def _step(model, batch):
    """One training forward + backward (state None, as collate.batch_loss runs it): loss, grads by name."""
    pixels, ids, labels = batch
    model.zero_grad(set_to_none=True)
    logits = model(ids, pixels)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters()}


def _missing(grads) -> list[str]:
    return [n for n, g in grads.items() if g is None or not bool((g != 0).any())]


def test_training_ops_keep_every_gradient(fake_gpu):
    model, batch = _model_and_batch()
    with dispatch.use_reference_ops():
        ref_loss, ref_grads = _step(model, batch)
    assert _missing(ref_grads) == []
    with dispatch.use_training_ops():
        loss, grads = _step(model, batch)
    # only the differentiable scan left the reference
    assert fake_gpu and set(fake_gpu) == {"ssd_chunk_scan_autograd"}
    assert _missing(grads) == [], "training ops cut the gradient of these parameters"
    assert_close("loss", ref_loss, loss, atol=1e-5, rtol=1e-5)
    for name, g in grads.items():
        assert_close(name, ref_grads[name], g, atol=1e-5, rtol=1e-3)


def test_a_refused_fla_backward_falls_back_before_the_forward(fake_gpu, monkeypatch):
    # fla 0.6 refuses its backward on Hopper with Triton < 3.7.1 (the lent H200 has 3.6): the scan
    # must fall back in the forward, not fail later inside backward()
    monkeypatch.setattr(fla_adapter, "backward_refusal", lambda: "fla backward refused (test)")
    model, batch = _model_and_batch()
    with dispatch.use_reference_ops():
        ref_loss, ref_grads = _step(model, batch)
    with dispatch.use_training_ops():
        loss, grads = _step(model, batch)
    assert "refused" in dispatch.kernel_failures().get("ssd_chunk_scan[train]", "")
    assert _missing(grads) == []
    assert_close("loss", ref_loss, loss, atol=1e-5, rtol=1e-5)
    # inference (no grad) still takes fla's forward
    with torch.no_grad():
        fla_adapter.ssd_chunk_scan_fla(*_scan_inputs())


def _scan_inputs():
    gen = torch.Generator().manual_seed(1)
    b, t, h, p, g, n = 1, 8, 2, 4, 1, 4
    return (torch.randn(b, t, h, p, generator=gen), torch.randn(b, t, h, generator=gen), -torch.rand(h, generator=gen),
            torch.randn(b, t, g, n, generator=gen), torch.randn(b, t, g, n, generator=gen))


def test_forward_only_kernels_would_cut_gradients(fake_gpu):
    # the check above has teeth: with every (simulated) kernel on, parameters lose their gradient
    model, batch = _model_and_batch()
    _, grads = _step(model, batch)
    assert any(name.endswith("_triton") for name in fake_gpu)
    assert _missing(grads)


def test_training_ops_on_cpu_equal_the_reference():
    # on CPU only the scan's reference changes (chunks batched): same math, fp32 rounding
    model, batch = _model_and_batch()
    with dispatch.use_reference_ops():
        ref_loss, ref_grads = _step(model, batch)
    with dispatch.use_training_ops():
        loss, grads = _step(model, batch)
    assert _missing(grads) == []
    assert_close("loss", ref_loss, loss, atol=1e-6, rtol=1e-6)
    for name, g in grads.items():
        assert_close(name, ref_grads[name], g, atol=1e-6, rtol=1e-4)


def test_stateless_forward_equals_the_cached_forward():
    # state None (training: SDPA causal attention, no KV cache, no state kept) == a fresh state
    model, (pixels, ids, labels) = _model_and_batch()
    lm = model.language_model
    embeds = model.embed_inputs(ids, model.encode_images(pixels).flatten(0, 1)).detach()
    outs = []
    for make_state in (lambda: lm.new_state(ids.shape[0]), lambda: None):
        lm.zero_grad(set_to_none=True)
        logits = lm(inputs_embeds=embeds, state=make_state())
        F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten()).backward()
        # the embedding table gets no gradient here (embeds are detached)
        outs.append((logits.detach(), {n: p.grad.clone() for n, p in lm.named_parameters() if p.grad is not None}))
    (cached, cached_grads), (free, free_grads) = outs
    assert_close("logits", cached, free, atol=1e-5, rtol=1e-5)
    assert free_grads.keys() == cached_grads.keys() and len(free_grads) == len(list(lm.parameters())) - 1
    for name, g in free_grads.items():
        assert_close(name, cached_grads[name], g, atol=1e-6, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_training_ops_on_gpu_match_the_reference(dtype):
    # run before a GPU training run: fla's scan trains (forward and Triton backward) like the reference
    from nanovl.ops.ssd import fla_adapter

    if not fla_adapter.available():
        pytest.skip("fla is not importable")
    if fla_adapter.backward_refusal():
        pytest.skip(fla_adapter.backward_refusal())
    model, batch = _model_and_batch()
    model = model.cuda()
    batch = tuple(t.cuda() for t in batch)
    results = []
    for mode in (dispatch.use_reference_ops, dispatch.use_training_ops):
        with mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            results.append(_step(model, batch))
    assert not dispatch.kernel_failures(), dispatch.kernel_failures()
    (ref_loss, ref_grads), (loss, grads) = results
    assert _missing(grads) == []
    tol = 1e-3 if dtype == torch.float32 else 3e-2
    assert abs(float(loss) - float(ref_loss)) <= tol * float(ref_loss)
    for name, g in grads.items():
        r = ref_grads[name].double()
        rel = ((g.double() - r).norm() / r.norm().clamp_min(1e-12)).item()
        assert rel < 10 * tol, f"{name}: relative gradient error {rel:.2e}"
