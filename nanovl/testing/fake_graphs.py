"""FakeGraphs: DecodeCudaGraphs with its CUDA parts run eagerly, so the engine's graph path runs on a CPU.

A replay is one step over pool rows 0..b-1 of the bucket through fixed-capacity K/V views, every
row included, and the capture's warm-up steps move the rows' states for real; the rest of
DecodeCudaGraphs (`step_rows`, `capture(preserve_state=...)`) is the real code. Tests install it with
`monkeypatch.setattr(nanovl.engine.model_runner, "DecodeCudaGraphs", FakeGraphs)` and set
`runner.use_cuda_graphs = True`.
"""
from __future__ import annotations

from nanovl.engine import cuda_graphs


class _EagerReplay:
    """A "graph" of one bucket: replay() runs that bucket's step eagerly into its logits buffer."""

    def __init__(self, owner: "FakeGraphs", b: int):
        self.owner, self.b = owner, b

    def replay(self):
        self.owner.logits[self.b].copy_(self.owner._forward(self.b))


class FakeGraphs(cuda_graphs.DecodeCudaGraphs):
    """DecodeCudaGraphs with its CUDA parts (the capture, the replay) run eagerly: the rest, the
    runner's `step_rows` and `capture(preserve_state=...)` included, is the real code."""

    needs_cuda = False

    def _capture(self):
        # as the real capture: a warm-up step per bucket that runs for real (it moves the rows'
        # recurrent states, which capture(preserve_state=True) must put back), seq_lens restored
        seq_lens = self.state.seq_lens.clone()
        for b in reversed(self.buckets):
            self.logits[b] = self._forward(b).clone()
            self.graphs[b] = _EagerReplay(self, b)
            self.state.seq_lens.copy_(seq_lens)
        self._ptrs = cuda_graphs._pointers(self.state)
