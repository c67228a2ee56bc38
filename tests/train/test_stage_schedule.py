"""The curriculum's stages: stage 0 (text tiles, larger batches) -> stage 1 -> stage 2, by batch index.

    pytest tests/train/test_stage_schedule.py -q
"""
from __future__ import annotations

from tokenizers import Tokenizer

from nanovl.llm import BUNDLED_MODEL
from nanovl.model.presets import preset_config
from nanovl.train.dataset import CurriculumStream, StageSchedule


def test_schedule_counts_stage0_batches_first():
    sched = StageSchedule(stage1_batches=10, stage0_batches=5)
    assert [sched(b) for b in (0, 4, 5, 14, 15, 99)] == [0, 0, 1, 1, 2, 2]
    # without stage 0 the old two-stage schedule is unchanged
    assert [StageSchedule(10)(b) for b in (0, 9, 10)] == [1, 1, 2]


def test_stage0_batches_are_single_tiles_with_their_own_size_and_seeds():
    cfg = preset_config("tiny-trained")
    tok = Tokenizer.from_file(str(BUNDLED_MODEL / "tokenizer.json"))
    stream = CurriculumStream(str(BUNDLED_MODEL), seed=0, batch_size=2, start=0, stage_of=StageSchedule(3, 2),
                              image_size=cfg.force_image_size, max_tiles=cfg.max_num_tiles, mean=cfg.norm_mean,
                              std=cfg.norm_std, stage0_batch_size=6)
    b0, b1, b2 = stream.batch(0, tok), stream.batch(1, tok), stream.batch(2, tok)
    assert len(b0) == len(b1) == 6 and len(b2) == 2
    # stage 0: single tiles only, text tiles (most) and scene tiles
    assert {e.task for e in b0 + b1} <= {"text_tile", "scene_tile"} and "text_tile" in {e.task for e in b0 + b1}
    assert all(len(e.media) == 1 and e.media[0].pixel_values.shape[0] == 1 for e in b0)
    # 12 different tiles (no seed repeats across stage-0 batches)
    assert len({e.media[0].pixel_values.sum().item() for e in b0 + b1}) == 12
    assert any(e.task not in ("text_tile", "scene_tile") for b in range(2, 12) for e in stream.batch(b, tok))


def test_every_stage_names_the_objects_of_video_frames():
    # v3 had no scene tiles and named every shape of a clip "a yellow circle" (TRAINING_NOTES §9)
    from nanovl.train.samples import STAGE_TASKS, VIDEO_QUESTIONS, draw_sample

    for stage in (0, 1, 2):
        assert STAGE_TASKS[stage].get("scene_tile", 0) > 0, stage
    tasks = [draw_sample(seed, 1).sample.task for seed in range(200)]  # deterministic: fixed seeds
    assert "scene_tile" in tasks
    # both video stages ask for dense captions, the question that makes the model name what it sees
    assert all(VIDEO_QUESTIONS[stage].get("dense", 0) > 0 for stage in (1, 2))


def test_every_later_stage_keeps_text_tiles_in_its_mix():
    # reading fades when tiles leave the mix: v2 (no tiles in stage 2) lost 4 points of text-tile
    # exact answers during stage 2 (docs/TRAINING_NOTES.md section 8)
    from nanovl.train.samples import STAGE_TASKS, draw_sample

    for stage in (1, 2):
        assert STAGE_TASKS[stage].get("text_tile", 0) > 0, stage
        tasks = {draw_sample(seed, stage).sample.task for seed in range(60)}  # deterministic: fixed seeds
        assert "text_tile" in tasks and len(tasks) > 1, (stage, tasks)
