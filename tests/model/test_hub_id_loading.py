"""A hub id (`org/name`) whose snapshot is in the local Hugging Face cache loads everywhere a folder
does: load_model, LLM (weights and tokenizer from the same snapshot) and the CLI, offline.

Run: pytest tests/model/test_hub_id_loading.py
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TINY = Path(__file__).resolve().parents[2] / "nanovl" / "assets" / "tiny"
REPO_ID = "acme/tinyvl"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A Hugging Face cache holding the bundled tiny model as acme/tinyvl's main revision, offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--tinyvl" / "snapshots" / "0123abcd"
    shutil.copytree(TINY, snapshot)
    (cache / "models--acme--tinyvl" / "refs").mkdir()
    (cache / "models--acme--tinyvl" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_llm_takes_the_tokenizer_from_the_hub_snapshot(hub_cache):
    # the engine looked for tokenizer.json under the literal "acme/tinyvl" and refused the id
    from nanovl.llm import LLM
    from nanovl.sampling_params import SamplingParams

    by_id = LLM(REPO_ID, device="cpu", dtype="float32")
    by_folder = LLM(str(TINY), device="cpu", dtype="float32")
    params = SamplingParams(max_tokens=6, temperature=0)
    assert by_id.tokenizer.vocab_size == by_folder.tokenizer.vocab_size
    assert by_id.generate(["Total due:"], params)[0].token_ids == by_folder.generate(["Total due:"], params)[0].token_ids


def test_cli_runs_a_cached_hub_id_offline(hub_cache):
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "nanovl", "run", REPO_ID, "Hello /no_think", "--max-tokens", "3"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_an_uncached_hub_id_is_a_clear_error_offline(hub_cache):
    from nanovl.llm import LLM

    with pytest.raises(ValueError, match="acme/other.*offline mode"):
        LLM("acme/other", device="cpu")
