"""Pure tensor ops: each has a plain-PyTorch reference and (optionally) a GPU kernel."""
from nanovl.ops.dispatch import use_kernel, use_reference_ops

__all__ = ["use_kernel", "use_reference_ops"]
