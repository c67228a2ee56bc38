"""`python -m nanovl serve` as a real subprocess on 127.0.0.1, driven by the openai client, stopped with Ctrl-C.

Run: pytest tests/cli/test_cli_serve.py
"""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest

from nanovl import cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(url + "/health", timeout=2).json()["status"] == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail("serve did not come up")


def test_serve_subprocess(ckpt, tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "nanovl", "serve", ckpt, "--port", str(port), "--api-key", "sk-cli",
           "--served-model-name", "tiny", "tiny-alias", "--max-num-seqs", "2", "--max-model-len", "300",
           "--allowed-media-root", str(tmp_path), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url)
        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-cli", max_retries=0)
        models = client.models.list().data
        assert [m.id for m in models] == ["tiny", "tiny-alias"]
        assert models[0].model_extra["max_model_len"] == 300
        resp = client.chat.completions.create(model="tiny-alias", messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=3, temperature=0)
        assert resp.model == "tiny-alias" and resp.usage.completion_tokens <= 3
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0


@pytest.mark.parametrize("argv", [["--allowed-media-root", "/definitely/not/here"], ["--max-body-bytes", "0"]])
def test_serve_bad_flags(ckpt, argv, capsys):
    assert cli.main(["serve", ckpt, *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nanovl: error: ") and err.count("\n") == 1
