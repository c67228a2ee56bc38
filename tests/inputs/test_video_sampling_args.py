"""Frame sampling arguments: bad fps / max_frames are a ValueError worded for the user, never a crash.

run: pytest tests/inputs/test_video_sampling_args.py
"""
from __future__ import annotations

import pytest

from nanovl.apps.video import VideoOptions
from nanovl.inputs.video import load_video, sample_times


@pytest.mark.parametrize("fps,max_frames,needle", [
    (0.0, 4, "fps must be a finite number > 0, got 0.0"),
    (-1.0, 4, "fps must be a finite number > 0, got -1.0"),
    (float("inf"), 4, "fps must be a finite number > 0"),
    (float("nan"), 4, "fps must be a finite number > 0"),
    (2.0, 0, "max_frames must be >= 1, got 0"),
])
def test_bad_sampling_is_a_value_error(fps, max_frames, needle):
    with pytest.raises(ValueError, match=needle):
        sample_times(10.0, fps, max_frames)
    # load_video checks before opening the file, so the missing file is never reached
    with pytest.raises(ValueError, match=needle):
        load_video("missing.mp4", fps=fps, max_frames=max_frames)
    # a VideoSession's options fail when made, before speech recognition could run
    with pytest.raises(ValueError, match=needle):
        VideoOptions(fps=fps, max_frames=max_frames)
