"""Pure tensor ops: each has a plain-PyTorch reference and (optionally) a GPU kernel."""
from nanovl.ops.dispatch import kernel_failures, use_kernel, use_reference_ops

__all__ = ["kernel_failures", "use_kernel", "use_reference_ops"]
