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


def test_the_hub_fetch_takes_only_the_shards_the_index_names(tmp_path, monkeypatch):
    # a repo that also ships a consolidated model.safetensors must not cost a second copy of the weights
    import fnmatch

    import huggingface_hub

    remote = tmp_path / "remote"
    shutil.copytree(TINY, remote)
    (remote / "model.safetensors").write_bytes(b"a consolidated copy, 24 GB in a real repo")
    (remote / "pytorch_model.bin").write_bytes(b"another format")
    local, asked = tmp_path / "snapshot", []

    def fake_download(repo_id, *, allow_patterns, local_files_only, etag_timeout):
        asked.append(list(allow_patterns))
        for f in remote.iterdir():
            if any(fnmatch.fnmatch(f.name, p) for p in allow_patterns):
                local.mkdir(exist_ok=True)
                shutil.copy(f, local / f.name)
        return str(local)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    from nanovl.model.loader import load_model

    load_model(REPO_ID, dtype="float32")
    fetched = sorted(f.name for f in local.iterdir())
    assert "model.safetensors" not in fetched and "pytorch_model.bin" not in fetched
    assert [n for n in fetched if n.endswith(".safetensors")] == sorted(
        f.name for f in TINY.glob("model-*.safetensors"))
    assert not any(p.endswith(".safetensors") or p == "*" for p in asked[0])
