"""Fixtures of the server tests: one tiny random VL model, real uvicorn servers on 127.0.0.1.

The model is loaded once per session; each server gets its own engine over it (engine options
differ per server: queue size, slots), started on an ephemeral port in a background thread.
"""
from __future__ import annotations

import httpx
import openai
import pytest
from helpers import start_server_thread
from serverkit import MAX_MODEL_LEN, MODEL_NAME



@pytest.fixture(scope="session")
def tiny_parts(tmp_path_factory):
    """(checkpoint folder, loaded model, tokenizer) of a random tiny VL checkpoint."""
    from nanovl.model.loader import load_model
    from nanovl.testing.random_checkpoint import write_random_vl_checkpoint
    from nanovl.tokenizer import Tokenizer
    from nanovl.train.tokenizer import build_tiny_tokenizer

    root = tmp_path_factory.mktemp("server_tiny")
    tok_dir = build_tiny_tokenizer(root / "tok")
    ckpt = write_random_vl_checkpoint(root / MODEL_NAME, tokenizer_dir=tok_dir,
                                      overrides={"llm_config": {"vocab_size": 512}})
    return ckpt, load_model(ckpt), Tokenizer.from_dir(ckpt)


@pytest.fixture(scope="session")
def start_server(tiny_parts):
    """start_server(settings=None, **engine_kwargs) -> a started ServerThread (stopped at session end)."""
    from nanovl.engine.engine import EngineConfig, LLMEngine

    ckpt, model, tok = tiny_parts
    started = []

    def start(settings=None, **engine_kwargs):
        engine_kwargs.setdefault("max_model_len", MAX_MODEL_LEN)
        engine = LLMEngine(EngineConfig(model=str(ckpt), **engine_kwargs), model=model, tokenizer=tok)
        started.append(start_server_thread(engine, settings))
        return started[-1]

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def server(start_server):
    """The default server: no API key, no local or remote media, 16 slots."""
    return start_server(max_num_seqs=16)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c
