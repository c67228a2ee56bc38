"""Quantization of checkpoints (ModelOpt's FP8 layout, which `nanovl.model.quantized` loads)."""
