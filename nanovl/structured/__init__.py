"""Constrained decoding: JSON schema -> token masks."""
