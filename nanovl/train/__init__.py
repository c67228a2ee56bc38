"""Synthetic data and the training recipe for the tiny model."""
