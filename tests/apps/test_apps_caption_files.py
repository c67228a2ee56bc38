"""Caption files and pictures: cues with end > start, WebVTT escaping, pictures at exactly the path given.

run: pytest tests/apps/test_apps_caption_files.py
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nanovl.apps.captions import MIN_CUE_SECONDS, Caption, cue_times, draw_timeline, to_srt, to_vtt
from nanovl.apps.evs_map import EvsMap, draw_evs_map


def _timings(doc: str) -> list[str]:
    return [line for line in doc.splitlines() if " --> " in line]


def test_one_frame_video_gets_a_cue_with_length():
    one = [Caption(1.5, 1.5, "a red ball")]
    assert _timings(to_vtt(one)) == ["00:00:01.500 --> 00:00:02.000"]
    assert _timings(to_srt(one)) == ["00:00:01,500 --> 00:00:02,000"]


def test_short_cue_is_lengthened_up_to_the_next_cue_only():
    caps = [Caption(0.0, 0.0, "a"), Caption(0.2, 0.2, "b"), Caption(0.2, 3.0, "c"), Caption(5.0, 6.0, "d")]
    assert cue_times(caps) == [(0.0, 0.2), (0.2, 0.7), (0.2, 3.0), (5.0, 6.0)]
    assert all(end > start for start, end in cue_times(caps))
    assert MIN_CUE_SECONDS == 0.5


def test_vtt_escapes_markup_and_srt_keeps_text():
    caps = [Caption(0.0, 1.0, "Tom & Jerry <run> -> away")]
    assert to_vtt(caps).splitlines()[-1] == "Tom &amp; Jerry &lt;run&gt; -&gt; away"
    # SubRip has no character references: players would show "&amp;" as typed
    assert to_srt(caps).splitlines()[-1] == "Tom & Jerry <run> -> away"


def test_cue_text_stays_on_one_line():
    doc = to_vtt([Caption(0.0, 1.0, "two\n\nlines")])
    assert doc.endswith("\ntwo lines\n")


@pytest.mark.parametrize("name,fmt", [("timeline", "PNG"), ("timeline.png", "PNG"), ("timeline.jpg", "JPEG")])
def test_timeline_is_written_at_exactly_the_path(tmp_path, name, fmt):
    path = tmp_path / name
    written = draw_timeline([Caption(0.0, 1.0, "x")], 2.0, str(path))
    assert written == str(path) and Image.open(path).format == fmt
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_evs_map_picture_is_written_at_exactly_the_path(tmp_path):
    evs = EvsMap(np.zeros((2, 32, 32, 3), np.uint8), [0.0, 0.5], np.ones((2, 4, 4), bool), 0.5, 10)
    written = draw_evs_map(evs, str(tmp_path / "map"))
    assert written == str(tmp_path / "map") and Image.open(tmp_path / "map").format == "PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["map"]
    with pytest.raises(IsADirectoryError):
        draw_evs_map(evs, str(tmp_path))


def test_short_cues_stop_at_the_end_of_the_video():
    # a one-frame event 0.2 s before a 3 s video ends: lengthened to its end, not 0.3 s past it; an
    # event at the very end keeps the shortest cue (a cue may not be empty)
    caps = [Caption(1.0, 1.0, "a"), Caption(2.8, 2.8, "b"), Caption(3.0, 3.0, "c")]
    assert cue_times(caps, duration=3.0) == [(1.0, 1.5), (2.8, 3.0), (3.0, 3.0 + MIN_CUE_SECONDS)]
    assert _timings(to_srt(caps[:2], duration=3.0))[-1] == "00:00:02,800 --> 00:00:03,000"
    assert cue_times(caps[:2])[-1] == (2.8, 2.8 + MIN_CUE_SECONDS)  # no duration: only the next cue limits
