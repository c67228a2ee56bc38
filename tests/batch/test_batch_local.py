"""`run_batch` in process on the bundled tiny model: same answers as the server, error lines, resume."""
from __future__ import annotations

import json

import httpx
import pytest
from batchkit import answer, ask, by_id, eight_requests, line, read_records, write_jsonl
from helpers import start_server_thread

from nanovl.batch import BatchInputError, run_batch


@pytest.fixture(scope="module")
def job(tiny_llm, tmp_path_factory):
    """The eight requests run once as a batch: (folder, request lines, records, summary)."""
    folder = tmp_path_factory.mktemp("batch_local")
    rows = eight_requests(folder)
    out = folder / "out.jsonl"
    summary = run_batch(write_jsonl(folder / "in.jsonl", rows), out, llm=tiny_llm)
    return folder, rows, read_records(out), summary


def test_batch_matches_server(job, tiny_llm):
    from nanovl.llm import LLM
    from nanovl.server.media import MediaPolicy
    from nanovl.server.state import ServerSettings

    folder, rows, records, summary = job
    assert summary.num_done == 8 and summary.num_failed == 0 and summary.num_output_tokens > 0
    got = by_id(records)
    assert set(got) == {r["custom_id"] for r in rows}
    settings = ServerSettings(media=MediaPolicy(allowed_root=folder))
    server = start_server_thread(LLM(None, max_num_seqs=8).engine, settings)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for row in rows:
                resp = http.post(row["url"], json=row["body"])
                assert resp.status_code == 200, resp.text
                rec = got[row["custom_id"]]
                assert rec["error"] is None and rec["response"]["status_code"] == 200
                body = rec["response"]["body"]
                assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
                assert answer(body) == answer(resp.json()), row["custom_id"]
                assert body["usage"] == resp.json()["usage"], row["custom_id"]
    finally:
        server.stop()
    schema_answer = json.loads(got["schema"]["response"]["body"]["choices"][0]["message"]["content"])
    assert isinstance(schema_answer["total"], (int, float))
    assert rec["id"].startswith("batch_req_") and rec["response"]["request_id"]


def test_completions_and_n(tiny_llm, tmp_path):
    rows = [line("c", {"prompt": ["Once upon", "A"], "max_tokens": 5, "temperature": 0, "echo": True},
                 url="/v1/completions"),
            line("n3", ask("Hi /no_think", max_tokens=4, n=3, temperature=0.9, seed=3))]
    out = tmp_path / "out.jsonl"
    run_batch(write_jsonl(tmp_path / "in.jsonl", rows), out, llm=tiny_llm)
    got = by_id(read_records(out))
    body = got["c"]["response"]["body"]
    assert body["object"] == "text_completion" and len(body["choices"]) == 2
    assert body["choices"][0]["text"].startswith("Once upon")
    assert len(got["n3"]["response"]["body"]["choices"]) == 3


def test_bad_lines_get_4xx_records_and_the_rest_completes(tiny_llm, tmp_path):
    (tmp_path / "media").mkdir()
    rows = [line("ok-1", ask("Hello /no_think", max_tokens=4)),
            "{this is not json",
            line("bad-url", ask("x"), url="/v1/embeddings"),
            line("bad-temp", ask("x", temperature=-1)),
            line("outside", {"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "file:///etc/hostname"}}]}]}),
            line("dotdot", {"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "../secret.png"}}]}]}),
            line("missing", {"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "nowhere.png"}}]}]}),
            line("ok-1", ask("again")),
            line("no-messages", {"max_tokens": 3}),
            line("ok-2", ask("Bye /no_think", max_tokens=4))]
    out = tmp_path / "out.jsonl"
    summary = run_batch(write_jsonl(tmp_path / "media" / "in.jsonl", rows), out, llm=tiny_llm)
    records = read_records(out)
    assert (summary.num_done, summary.num_failed) == (2, 8) and len(records) == 10
    status = {(r["custom_id"], r["error"] and r["error"]["line"]): r["response"]["status_code"] for r in records}
    message = {(r["custom_id"], r["error"]["line"]): r["error"]["message"] for r in records if r["error"]}
    assert status[("ok-1", None)] == 200 and status[("ok-2", None)] == 200
    expected = {(None, 2): (400, "not valid JSON"), ("bad-url", 3): (404, "unknown url"),
                ("bad-temp", 4): (400, "temperature"), ("outside", 5): (400, "leaves the allowed media root"),
                ("dotdot", 6): (400, "leaves the allowed media root"), ("missing", 7): (400, "no such file"),
                ("ok-1", 8): (400, "already used"), ("no-messages", 9): (400, "messages")}
    for key, (code, words) in expected.items():
        assert status[key] == code and words in message[key], (key, message[key])
    for r in records:
        if r["error"]:
            assert r["response"]["body"]["error"]["message"] == r["error"]["message"]


def test_resume_skips_finished_ids_and_redoes_a_cut_record(job, tiny_llm, tmp_path):
    media_root, rows, records, _ = job
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    first3 = [json.dumps(r) for r in records[:3]]
    cut = json.dumps(records[3])[:40]  # a kill in the middle of the fourth record
    out.write_text("\n".join(first3) + "\n" + cut, encoding="utf-8")
    with pytest.raises(BatchInputError, match="--resume"):
        run_batch(src, out, llm=tiny_llm, allowed_media_root=media_root)
    summary = run_batch(src, out, llm=tiny_llm, resume=True, allowed_media_root=media_root)
    assert (summary.num_skipped, summary.num_done, summary.num_failed) == (3, 5, 0)
    after = out.read_text(encoding="utf-8").splitlines()
    assert after[:3] == first3, "finished records were rewritten"
    got = [json.loads(x) for x in after]
    assert sorted(r["custom_id"] for r in got) == sorted(r["custom_id"] for r in rows)
    assert all(r["response"]["status_code"] == 200 for r in got)
    # a second resume finds nothing left to do
    again = run_batch(src, out, llm=tiny_llm, resume=True, allowed_media_root=media_root)
    assert (again.num_skipped, again.num_done) == (8, 0) and len(read_records(out)) == 8


def test_resume_does_not_repeat_error_records(tiny_llm, tmp_path):
    rows = ["not json", line("a", ask("Hi /no_think", max_tokens=3)), line("a", ask("dup"))]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    first = run_batch(src, out, llm=tiny_llm)
    assert (first.num_done, first.num_failed) == (1, 2)
    again = run_batch(src, out, llm=tiny_llm, resume=True)
    assert (again.num_skipped, again.num_done, again.num_failed) == (3, 0, 0) and len(read_records(out)) == 3


def test_a_long_file_runs_in_bounded_memory(tiny_llm, tmp_path, monkeypatch):
    # every plan (media bytes, pixel tensors, outputs) stayed alive until the job ended, and the
    # engine was fed until its 1024-request queue was full: 400 image requests held 1.3 GB
    from nanovl.batch import execute

    rows = [line(f"r{k}", ask(f"Say {k} /no_think", max_tokens=1)) for k in range(120)]
    held = []
    settle = execute._Flight.settle

    def watching(self, index, out):
        held.append(len(self.owners))
        return settle(self, index, out)

    monkeypatch.setattr(execute._Flight, "settle", watching)
    summary = run_batch(write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl", llm=tiny_llm)
    assert summary.num_done == 120
    in_flight = 2 * tiny_llm.engine.config.max_num_seqs
    assert len(held) == 120 and max(held) <= in_flight, max(held)


def test_resume_of_a_failed_id_still_refuses_its_duplicate(tiny_llm, tmp_path):
    # the first "a" fails and is kept; on resume its later duplicate was skipped without a record
    rows = [line("a", ask("x", temperature=-1)), line("b", ask("Hi /no_think", max_tokens=2)),
            line("a", ask("Hi /no_think", max_tokens=2)), line("c", ask("Hi /no_think", max_tokens=2))]
    src, full, cut = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "full.jsonl", tmp_path / "cut.jsonl"
    run_batch(src, full, llm=tiny_llm)
    cut.write_text(full.read_text().splitlines(keepends=True)[0])
    run_batch(src, cut, llm=tiny_llm, resume=True)

    def outcome(path):
        return sorted((r["custom_id"], r["response"]["status_code"], (r["error"] or {}).get("code"))
                      for r in read_records(path))

    assert outcome(cut) == outcome(full) and len(read_records(cut)) == 4


def test_odd_but_readable_lines(tiny_llm, tmp_path):
    # a byte-order mark before line 1, and a custom_id that is valid JSON but no text (a lone surrogate),
    # which stopped the whole job when its record was written
    src = tmp_path / "in.jsonl"
    good = json.dumps(line("a", ask("Hi /no_think", max_tokens=2)))
    bad = good.replace('"custom_id": "a"', '"custom_id": "bad\\ud800"')
    src.write_bytes(b"\xef\xbb\xbf" + (good + "\n" + bad + "\n" + good.replace('"a"', '"b"') + "\n").encode())
    summary = run_batch(src, tmp_path / "out.jsonl", llm=tiny_llm)
    records = read_records(tmp_path / "out.jsonl")
    assert (summary.num_done, summary.num_failed) == (2, 1)
    [failed] = [r for r in records if r["error"]]
    assert failed["custom_id"] is None and "not valid Unicode" in failed["error"]["message"]


def test_the_input_is_never_the_output(tiny_llm, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [line("a", ask("Hi"))])
    before = src.read_bytes()
    for flags in ({"overwrite": True}, {"resume": True}):
        with pytest.raises(BatchInputError, match="is the input file"):
            run_batch(src, tmp_path / "." / "in.jsonl", llm=tiny_llm, **flags)
    assert src.read_bytes() == before


def test_resume_runs_server_side_failures_again(tiny_llm, tmp_path):
    # a 5xx record (a replica died, no replica left) is the job's fault: --resume runs it again and
    # the output keeps one record per request; a 4xx record is the request's and stays
    rows = [line(f"r{k}", ask(f"Say {k} /no_think", max_tokens=2)) for k in range(3)]
    rows.append(line("bad", ask("x", temperature=-1)))
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    run_batch(src, out, llm=tiny_llm)
    records = read_records(out)
    for rec in records:
        if rec["custom_id"] == "r1":
            rec["response"] = {"status_code": 500, "body": {"error": {"message": "replica died"}}}
            rec["error"] = {"code": "replica_failed", "message": "replica died", "line": 2}
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = run_batch(src, out, llm=tiny_llm, resume=True)
    assert (summary.num_done, summary.num_skipped) == (1, 3)
    status = {r["custom_id"]: r["response"]["status_code"] for r in read_records(out)}
    assert status == {"r0": 200, "r1": 200, "r2": 200, "bad": 400} and len(read_records(out)) == 4
