"""16 concurrent streaming clients get exactly what each gets alone (greedy), and a client that
hangs up mid-stream frees its slot.

Run: pytest tests/server/test_server_concurrency.py
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from serverkit import MODEL_NAME, data_uri, image_part, png_bytes


NUM_CLIENTS = 16


def conversation(k: int) -> list[dict]:
    text = f"client {k}: " + "abcdefghijklmnop"[: k + 1]
    if k % 4 == 0:
        # some clients bring an image, so prefill lengths and media differ across the batch
        return [{"role": "user", "content": [image_part(data_uri(png_bytes(color=(16 * k, 40, 90)))),
                                              {"type": "text", "text": text}]}]
    return [{"role": "user", "content": text}]


def stream_answer(client, k: int) -> tuple[str, str, str]:
    chunks = client.chat.completions.create(model=MODEL_NAME, messages=conversation(k), stream=True,
                                            temperature=0, max_tokens=6 + k % 5,
                                            extra_body={"ignore_eos": True})
    content, reasoning, finish = [], [], None
    for c in chunks:
        delta = c.choices[0].delta
        content.append(delta.content or "")
        reasoning.append((delta.model_extra or {}).get("reasoning_content") or "")
        finish = c.choices[0].finish_reason or finish
    return "".join(content), "".join(reasoning), finish


def test_sixteen_streams_equal_solo_runs(client):
    solo = [stream_answer(client, k) for k in range(NUM_CLIENTS)]
    with ThreadPoolExecutor(NUM_CLIENTS) as pool:
        together = list(pool.map(lambda k: stream_answer(client, k), range(NUM_CLIENTS)))
    assert together == solo
    assert all(finish == "length" for _, _, finish in solo)
    assert len({s for s in solo}) > 1, "different prompts should give different answers"


def test_client_hangup_aborts(client, server):
    # all the context the prompt leaves: hundreds of steps, far longer than noticing the hang-up
    stream = client.chat.completions.create(model=MODEL_NAME, messages=conversation(1), stream=True,
                                            temperature=0, extra_body={"ignore_eos": True})
    next(iter(stream))
    stream.close()
    while server.engine.has_unfinished_requests():
        threading.Event().wait(0.01)
    assert server.async_engine.counters["aborted"] >= 1
    assert stream_answer(client, 2)[2] == "length"
