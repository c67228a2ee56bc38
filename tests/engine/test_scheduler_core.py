"""Scheduler unit tests without any model: requests in, SchedulerOutput assertions out.

Run: pytest tests/engine/test_scheduler_core.py
"""
from __future__ import annotations

import pytest

from nanovl.engine.cache_manager import CacheManager
from nanovl.engine.request import Request, RequestStatus
from nanovl.engine.scheduler import Scheduler
from nanovl.errors import ContextLengthError, InvalidRequestError, QueueFullError

EOS = 12


def make_sched(**kw) -> Scheduler:
    args = dict(max_num_seqs=2, max_model_len=64, max_prefill_chunk=8, max_waiting=4)
    args.update(kw)
    return Scheduler(**args)


def req(rid: str, n_prompt: int, max_tokens: int = 4, **kw) -> Request:
    return Request(rid, list(range(100, 100 + n_prompt)), max_tokens=max_tokens,
                   eos_token_ids=frozenset({EOS}), **kw)


def run_step(s: Scheduler, token: int = 7):
    out = s.schedule()
    sampled = {r: [token] for r in out.sampling_req_ids}
    s.update_from_output(out, sampled)
    return out


def test_schedule_prefill_then_batched_decode():
    s = make_sched()
    s.add_request(req("a", 5))
    s.add_request(req("b", 3))
    out = s.schedule()
    assert out.new_req_ids == ["a", "b"]
    assert [(c.req_id, c.start, len(c.token_ids), c.samples) for c in out.prefills] == \
        [("a", 0, 5, True), ("b", 0, 3, True)]
    assert out.decode_req_ids == []
    s.update_from_output(out, {"a": [7], "b": [8]})
    out = s.schedule()
    assert out.prefills == [] and out.new_req_ids == []
    assert out.decode_req_ids == ["a", "b"]
    assert out.decode_token_ids == [7, 8]
    assert sorted(out.decode_slots) == [0, 1]


def test_long_prompt_is_prefilled_in_chunks():
    s = make_sched(max_prefill_chunk=4)
    s.add_request(req("a", 10))
    chunks = []
    for _ in range(3):
        out = run_step(s)
        chunks += [(c.start, len(c.token_ids), c.samples) for c in out.prefills]
    assert chunks == [(0, 4, False), (4, 4, False), (8, 2, True)]
    assert s.requests["a"].output_token_ids == [7]
    assert s.requests["a"].num_computed_tokens == 10


def test_prefill_budget_shared_and_decode_not_blocked():
    s = make_sched(max_num_seqs=3, max_prefill_chunk=6)
    s.add_request(req("a", 2, max_tokens=10))
    run_step(s)  # a prefilled, now decoding
    s.add_request(req("b", 5))
    s.add_request(req("c", 5))
    out = s.schedule()
    assert out.decode_req_ids == ["a"]
    assert [(c.req_id, len(c.token_ids)) for c in out.prefills] == [("b", 5), ("c", 1)]
    assert out.total_num_scheduled_tokens == 7


def test_slots_bound_running_and_finished_slot_is_reused():
    s = make_sched(max_num_seqs=2)
    for rid in "abc":
        s.add_request(req(rid, 2, max_tokens=1))
    out = s.schedule()
    assert out.new_req_ids == ["a", "b"] and s.num_waiting == 1
    s.update_from_output(out, {"a": [7], "b": [7]})  # max_tokens=1: both finish
    assert s.num_running == 0
    out = s.schedule()
    assert sorted(out.freed_slots) == [0, 1]
    assert out.new_req_ids == ["c"] and out.prefills[0].slot == 0


def test_stop_rules_eos_stop_ids_length():
    s = make_sched(max_num_seqs=4)
    a, b, c = req("a", 2, max_tokens=9), req("b", 2, stop_token_ids=frozenset({5})), req("c", 2, max_tokens=2)
    d = req("d", 2, ignore_eos=True)
    for r in (a, b, c, d):
        s.add_request(r)
    out = s.schedule()
    s.update_from_output(out, {"a": [EOS], "b": [5], "c": [3], "d": [EOS]})
    assert a.status == RequestStatus.FINISHED_STOPPED and a.output_token_ids == [EOS]
    assert b.status == RequestStatus.FINISHED_STOPPED
    assert c.status == RequestStatus.RUNNING and d.status == RequestStatus.RUNNING
    s.update_from_output(s.schedule(), {"c": [3], "d": [3]})
    assert c.status == RequestStatus.FINISHED_LENGTH and c.finish_reason == "length"


def test_max_model_len_caps_output_and_rejects_long_prompt():
    s = make_sched(max_model_len=6)
    with pytest.raises(ContextLengthError, match="max_model_len=6"):
        s.add_request(req("long", 6))
    r = req("a", 4, max_tokens=100)
    s.add_request(r)
    for _ in range(5):
        run_step(s)
    assert r.num_tokens == 6 and r.status == RequestStatus.FINISHED_LENGTH


def test_forced_tokens_run_as_one_chunk():
    s = make_sched()
    r = req("a", 3, max_tokens=10)
    s.add_request(r)
    s.update_from_output(s.schedule(), {"a": [20, 21, 22]})
    out = s.schedule()
    assert out.decode_req_ids == []
    assert [(c.start, c.token_ids, c.samples) for c in out.prefills] == [(3, [20, 21, 22], True)]


def test_abort_frees_slot_and_is_reported():
    s = make_sched(max_num_seqs=1)
    s.add_request(req("a", 3, max_tokens=50))
    s.add_request(req("b", 3))
    out = s.schedule()
    s.update_from_output(out, {"a": [7]})
    assert s.abort("a") and not s.abort("a") and not s.abort("nope")
    assert s.cache.num_free_slots == 1
    out = s.schedule()
    assert out.freed_slots == [0] and out.new_req_ids == ["b"]


def test_abort_during_step_is_ignored_by_update():
    s = make_sched()
    s.add_request(req("a", 3))
    out = s.schedule()
    s.abort("a")
    assert s.update_from_output(out, {"a": [7]}) == []


def test_abort_waiting_request():
    s = make_sched(max_num_seqs=1)
    s.add_request(req("a", 3))
    s.add_request(req("b", 3))
    s.schedule()
    assert s.abort("b") and s.num_waiting == 0


def test_queue_full_and_duplicate_ids():
    s = make_sched(max_waiting=2)
    s.add_request(req("a", 2))
    with pytest.raises(InvalidRequestError, match="already in use"):
        s.add_request(req("a", 2))
    s.add_request(req("b", 2))
    with pytest.raises(QueueFullError):
        s.add_request(req("c", 2))


class _Prefix:
    num_tokens = 4


def test_prefix_state_skips_cached_tokens():
    s = make_sched()
    r = req("a", 6, prefix=_Prefix())
    s.add_request(r)
    out = s.schedule()
    assert [(c.start, len(c.token_ids)) for c in out.prefills] == [(4, 2)]
    assert r.num_cached_tokens == 4
    with pytest.raises(InvalidRequestError, match="prefix state covers 4"):
        s.add_request(req("b", 4, prefix=_Prefix()))


def test_cache_manager_lowest_free_first():
    cm = CacheManager(3)
    assert [cm.allocate(x) for x in "abc"] == [0, 1, 2]
    cm.free(1)
    assert cm.allocate("d") == 1 and cm.owner(1) == "d"
    with pytest.raises(ValueError, match="no free state slot"):
        cm.allocate("e")
    with pytest.raises(ValueError, match="not allocated"):
        CacheManager(1).free(0)


def test_request_validation():
    with pytest.raises(ValueError, match="prompt is empty"):
        Request("x", [])
    with pytest.raises(ValueError, match="max_tokens"):
        Request("x", [1], max_tokens=0)


def test_many_requests_through_few_slots_all_finish():
    s = make_sched(max_num_seqs=4, max_waiting=200)
    for i in range(100):
        s.add_request(req(f"r{i}", 1 + i % 13, max_tokens=1 + i % 5))
    steps, max_running = 0, 0
    while s.has_unfinished_requests():
        run_step(s)
        max_running = max(max_running, s.num_running)
        steps += 1
        assert steps < 2000
    assert max_running <= 4 and s.cache.num_free_slots == 4
