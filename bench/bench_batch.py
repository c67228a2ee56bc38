"""`nanovl batch` throughput against an LLM.chat call per request and one LLM.chat over them all.

    python bench/bench_batch.py [--requests 64] [--max-tokens 32] [--max-num-seqs 8] [--out F.json]

Chat requests on the bundled tiny model (text, and every fourth one with the bundled invoice as
a file), each generating exactly --max-tokens tokens (ignore_eos). Prints a table, writes JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from nanovl.batch import run_batch
from nanovl.llm import LLM
from nanovl.sampling_params import SamplingParams

INVOICE = Path(__file__).resolve().parents[1] / "nanovl" / "assets" / "samples" / "invoice.png"


def _messages(k: int, folder: Path) -> list[dict]:
    text = f"Question {k}: what is the total of the invoice? /no_think"
    if k % 4:
        return [{"role": "user", "content": text}]
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"file://{folder / 'invoice.png'}"}},
                                         {"type": "text", "text": text}]}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--max-num-seqs", type=int, default=8)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    shutil.copy(INVOICE, folder / "invoice.png")
    convs = [_messages(k, folder) for k in range(args.requests)]
    with (folder / "in.jsonl").open("w") as f:
        for k, messages in enumerate(convs):
            body = {"messages": messages, "max_tokens": args.max_tokens, "temperature": 0, "ignore_eos": True}
            f.write(json.dumps({"custom_id": f"r{k}", "method": "POST", "url": "/v1/chat/completions",
                                "body": body}) + "\n")
    llm = LLM(max_num_seqs=args.max_num_seqs, max_waiting=4 * args.max_num_seqs)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0, ignore_eos=True)
    llm.chat(convs[:2], params)  # warm-up

    rows = {}
    t0 = time.perf_counter()
    summary = run_batch(folder / "in.jsonl", folder / "out.jsonl", llm=llm, overwrite=True)
    rows["nanovl batch"] = time.perf_counter() - t0
    assert summary.num_done == args.requests, summary.line()
    t0 = time.perf_counter()
    llm.chat(convs, params)
    rows["one LLM.chat over all"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for messages in convs:
        llm.chat(messages, params)
    rows["LLM.chat per request"] = time.perf_counter() - t0

    tokens = args.requests * args.max_tokens
    print(f"{args.requests} requests x {args.max_tokens} tokens, max_num_seqs {args.max_num_seqs}, "
          f"{platform.processor() or platform.machine()}")
    print(f"| {'way':<24} | {'s':>7} | {'requests/s':>10} | {'output tok/s':>12} |")
    print(f"|{'-' * 26}|{'-' * 9}|{'-' * 12}|{'-' * 14}|")
    for way, sec in rows.items():
        print(f"| {way:<24} | {sec:7.2f} | {args.requests / sec:10.2f} | {tokens / sec:12.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "date": time.strftime("%Y-%m-%d"),
                                              "seconds": rows}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
