"""`run_batch(ray=True)`: two replicas on a local Ray (one session for the module) answer as local mode does."""
from __future__ import annotations

import os

import pytest
from batchkit import answer, ask, by_id, eight_requests, line, read_records, write_jsonl

from nanovl.batch import run_batch

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    # the actors inherit it: a replica given the request "crash-me" dies (first attempt only)
    os.environ["NANOVL_BATCH_CRASH_ON"] = "crash-me"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    os.environ.pop("NANOVL_BATCH_CRASH_ON", None)


def test_two_replicas_match_local_mode_and_share_the_work(local_ray, tiny_llm, tmp_path):
    rows = eight_requests(tmp_path) + [line("bad-temp", ask("x", temperature=-1))]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    run_batch(src, tmp_path / "local.jsonl", llm=tiny_llm)
    summary = run_batch(src, tmp_path / "ray.jsonl", ray=True, replicas=2, cpus_per_replica=1, chunk_size=2,
                        max_num_seqs=4)
    local, remote = by_id(read_records(tmp_path / "local.jsonl")), by_id(read_records(tmp_path / "ray.jsonl"))
    assert set(remote) == set(local) and (summary.num_done, summary.num_failed) == (8, 1)
    for cid, rec in local.items():
        assert rec["response"]["status_code"] == remote[cid]["response"]["status_code"], cid
        if rec["error"] is None:
            assert answer(remote[cid]["response"]["body"]) == answer(rec["response"]["body"]), cid
    # chunks of 2, two at a time per replica: each replica runs half of the 8 requests
    assert summary.by_replica == {0: 4, 1: 4}


def test_a_dead_replica_has_its_work_retried_on_the_other(local_ray, tmp_path):
    # chunks go round-robin, two at once per replica: replica 1 runs (r2, crash-me) and (r6, r7).
    # When it dies, both are retried on replica 0 (the driver once crashed on the second one's
    # bookkeeping, a KeyError, and lost the job)
    ids = ["r0", "r1", "r2", "crash-me", "r4", "r5", "r6", "r7", "r8", "r9"]
    src = write_jsonl(tmp_path / "in.jsonl", [line(i, ask(f"Say {i} /no_think", max_tokens=3)) for i in ids])
    summary = run_batch(src, tmp_path / "out.jsonl", ray=True, replicas=2, cpus_per_replica=1, chunk_size=2,
                        max_num_seqs=2)
    records = by_id(read_records(tmp_path / "out.jsonl"))
    assert sorted(records) == sorted(ids)
    assert all(r["response"]["status_code"] == 200 for r in records.values())
    assert summary.by_replica == {0: 10}
    # one attempt only: what the dead replica was running fails with a record saying so
    run_batch(src, tmp_path / "once.jsonl", ray=True, replicas=2, cpus_per_replica=1, chunk_size=2,
              max_num_seqs=2, max_attempts=1)
    status = {cid: r["response"]["status_code"] for cid, r in by_id(read_records(tmp_path / "once.jsonl")).items()}
    assert status == {cid: 500 if cid in ("r2", "crash-me", "r6", "r7") else 200 for cid in ids}
