"""Videos longer than the context: segment planning, lossless segment clips, merged captions.

The end-to-end checks run on the random tiny model with a small max_context, so the pipeline
must split the video; schema-constrained captions always parse, whatever the weights.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import replace

import pytest
import torch
from PIL import Image

from nanovl.apps import captions as cap
from nanovl.apps.clips import cut_clips
from nanovl.apps.long_video import ContextTooSmallError, plan_segments
from nanovl.apps.video import VideoOptions, VideoSession, pick_points
from nanovl.inputs.video import load_video, probe_video, sample_times
from nanovl.train.data.videos import random_script, write_video


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    script = replace(random_script(random.Random(8)), duration=12.0)
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    write_video(script, path)
    return str(path)


def _plan(n, budget, per_frame=10, text=2):
    times = [0.5 * i for i in range(n)]
    return plan_segments(times, 0.5 * n, [text] * n, lambda k: per_frame * k, budget)


def test_plan_fits_in_one_segment():
    (only,) = _plan(10, 200)
    assert (only.first, only.last, only.start, only.end, only.num_tokens) == (0, 9, 0.0, 5.0, 120)


def test_plan_balances_segments_within_budget():
    plans = _plan(10, 50)  # 12 tokens a frame: 4 frames fit, so 3 segments, balanced 3/4/3 or so
    assert len(plans) == 3
    assert [p.first for p in plans] == [0] + [p.last + 1 for p in plans[:-1]]
    assert plans[-1].last == 9 and plans[-1].end == 5.0
    assert all(p.num_tokens <= 50 for p in plans)
    assert max(p.num_samples for p in plans) - min(p.num_samples for p in plans) <= 1
    assert all(a.end == b.start for a, b in zip(plans, plans[1:]))


def test_plan_refuses_when_one_frame_does_not_fit():
    with pytest.raises(ContextTooSmallError, match="one video frame needs 12 tokens"):
        _plan(4, 11)


@pytest.mark.parametrize("fps", [2.0, 3.0, 5.0])  # the clip is 6 fps: every sample a new frame
def test_segment_clips_hold_the_sampled_frames(long_video, fps):
    # a step that is no whole number of milliseconds (1/3 s, 1/5 s) once lost a third of the frames:
    # the clip's times were rounded up past their sample times, and resampling took the frame before
    info = probe_video(long_video)
    times = sample_times(info.duration, fps, 128)
    groups = [(0, 7), (8, len(times) - 1)]
    whole = load_video(long_video, fps=fps, max_frames=128, image_size=128)
    got = []
    for clip, (a, b) in zip(cut_clips(long_video, times, groups, 128), groups):
        frames = load_video(clip.data, fps=1.0 / clip.step, max_frames=clip.num_samples, image_size=128)
        assert clip.start == times[a] and clip.num_samples == b - a + 1
        assert frames.timestamps == pytest.approx([k / fps for k in range(b - a + 1)], abs=1e-3)
        got.append(frames.pixel_values)
    # lossless clips: only uint8 rounding separates them from decoding the original
    assert torch.cat(got).shape == whole.pixel_values.shape
    assert (torch.cat(got) - whole.pixel_values).abs().max() < 0.05


def test_long_video_captions_cover_whole_duration(random_llm, long_video, tmp_path):
    opts = VideoOptions(fps=2.0, max_context=360, max_tokens=96, use_audio=False)
    session = VideoSession(random_llm, long_video, opts, progress=False)
    segs = session.segments
    assert len(segs) >= 3
    assert segs[0].start == 0.0 and segs[-1].end == pytest.approx(12.0)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))
    captions = cap.dense_captions(session)
    for seg in segs:
        inside = [c for c in captions if seg.start - 1e-6 <= c.start and c.end <= seg.end + 1e-6]
        assert inside, f"no caption from segment {seg.start}-{seg.end}"
    assert captions == sorted(captions, key=lambda c: (c.start, c.end))
    as_json = json.loads(cap.render(captions, "json"))
    assert [c["caption"] for c in as_json] == [c.caption for c in captions]
    vtt, srt = cap.render(captions, "vtt"), cap.render(captions, "srt")
    assert vtt.startswith("WEBVTT\n\n") and vtt.count(" --> ") == len(captions)
    assert srt.startswith("1\n") and srt.count(" --> ") == len(captions)
    png = tmp_path / "timeline.png"
    cap.draw_timeline(captions, 12.0, str(png), boundaries=[s.start for s in segs[1:]])
    assert Image.open(png).size[0] > 500


def test_long_video_free_summary_merges_segments(random_llm, long_video):
    opts = VideoOptions(fps=2.0, max_context=360, max_tokens=24, use_audio=False, summary="free")
    session = VideoSession(random_llm, long_video, opts, progress=False)
    bullets, answer = session.summarize(3)
    assert len(answer.parts) == len(session.segments) >= 3
    assert [p[:2] for p in answer.parts] == [(s.start, s.end) for s in session.segments]
    assert 1 <= len(bullets) <= 3 and answer.text.count("- ") >= len(bullets)


def test_long_video_grounded_summary_is_timed_events_in_order(random_llm, long_video):
    opts = VideoOptions(fps=2.0, max_context=360, max_tokens=96, use_audio=False)
    session = VideoSession(random_llm, long_video, opts, progress=False)
    bullets, answer = session.summarize(50)
    assert len(answer.parts) == len(session.segments) >= 3
    # one captions question per segment (no narration on a silent video), no merge call
    assert len(answer.outputs) == len(session.segments)
    times = [tuple(map(float, re.match(r"([\d.]+)-([\d.]+) s: ", b).groups())) for b in bullets]
    assert times == sorted(times) and times[0][0] >= 0.0 and times[-1][1] <= 12.0
    # every bullet sits in the part of the segment whose answer it came from
    for (start, end, text), seg in zip(answer.parts, session.segments):
        for line in filter(None, text.splitlines()):
            t0 = float(re.match(r"- ([\d.]+)-", line).group(1))
            assert seg.start - 0.05 <= t0 <= seg.end + 0.05


def test_pick_points_keeps_narration_then_earliest_events():
    timed = [(4.0, 1, "e4", 0), (0.5, 1, "e0", 0), (9.0, 0, "said", 1), (2.0, 1, "e2", 0)]
    assert [p[2] for p in pick_points(timed, 3)] == ["e0", "e2", "said"]
    assert [p[2] for p in pick_points(timed, 1)] == ["said"]
    assert [p[2] for p in pick_points(timed, 9)] == ["e0", "e2", "e4", "said"]


def test_place_and_merge_captions():
    seg1 = cap.place([cap.Caption(0.5, 9.0, "a red circle"), cap.Caption(1.0, 1.5, "x")], 0.0, 0.0, 4.0)
    seg2 = cap.place([cap.Caption(0.0, 1.0, "a red circle"), cap.Caption(2.0, 1.0, "y")], 4.0, 4.0, 8.0)
    assert seg1[0] == cap.Caption(0.5, 4.0, "a red circle")  # clamped to its segment
    assert seg2[1] == cap.Caption(6.0, 6.0, "y")  # end before start is raised to the start
    merged = cap.merge_captions([seg1, seg2], gap=0.5)
    assert cap.Caption(0.5, 5.0, "a red circle") in merged  # the event cut at 4.0 s is one again
    assert [c.caption for c in merged] == ["a red circle", "x", "y"]


def test_merge_joins_an_event_whose_edges_sit_one_frame_inside_each_segment():
    # seen through 2 fps frames the tiny model ends a cut event on its segment's last frame (3.5) and
    # starts it on the next segment's second frame (4.5): both edges within one frame of the cut at 4.0
    seg1 = [cap.Caption(0.5, 3.5, "a yellow triangle"), cap.Caption(1.0, 2.0, "a red circle")]
    seg2 = [cap.Caption(4.5, 7.0, "a yellow triangle"), cap.Caption(6.0, 7.0, "a red circle")]
    merged = cap.merge_captions([seg1, seg2], gap=0.5, boundaries=[0.0, 4.0])
    assert cap.Caption(0.5, 7.0, "a yellow triangle") in merged
    # an event that ended well before the cut is another event, not a piece of this one
    assert [c for c in merged if c.caption == "a red circle"] == [cap.Caption(1.0, 2.0, "a red circle"),
                                                                  cap.Caption(6.0, 7.0, "a red circle")]
    # without the boundaries only pieces within one frame of each other are joined
    assert cap.Caption(0.5, 7.0, "a yellow triangle") not in cap.merge_captions([seg1, seg2], gap=0.5)


def test_parse_captions_keeps_complete_events_of_a_cut_answer():
    text = '[{"start": 1, "end": 2, "caption": "one\\nline"}, {"start": 5, "end": 3, "caption": "b"}, {"start": 4'
    assert cap.parse_captions(text) == [cap.Caption(1.0, 2.0, "one line"), cap.Caption(3.0, 5.0, "b")]
    assert cap.parse_captions("not json") == []
