"""Fixtures of the batch tests: the bundled tiny model, loaded once per session (CPU)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_llm():
    from nanovl.llm import LLM

    return LLM(None, max_num_seqs=8)
