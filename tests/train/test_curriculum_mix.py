"""`--mix` / `--tile-shares`: a continuation reweighs stage 2 and the text tiles, and nothing else."""
from __future__ import annotations

import collections

import pytest

from nanovl.train.samples import Mix, STAGE_TASKS, draw_sample, parse_mix


def _tasks(stage: int, mix: Mix, n: int = 120) -> collections.Counter:
    return collections.Counter(draw_sample(seed, stage, mix).sample.task for seed in range(n))


def test_default_mix_is_the_curriculum_draw_for_draw():
    for stage in (0, 1, 2):
        for seed in range(40):  # deterministic: fixed seeds
            a, b = draw_sample(seed, stage), draw_sample(seed, stage, parse_mix(None, None))
            assert (a.sample.task, a.sample.target, a.thinking) == (b.sample.task, b.sample.target, b.thinking)


def test_mix_replaces_the_named_stage2_weights_only():
    mix = parse_mix("text_tile=20,video=0", None)
    weights = mix.weights(2)
    assert weights["text_tile"] == 20 and weights["video"] == 0 and weights["chart"] == STAGE_TASKS[2]["chart"]
    counts = _tasks(2, mix)
    assert counts["video"] == 0
    # text tiles are ~5 % of the default stage 2, over half with weight 20 of ~31
    assert counts["text_tile"] > 60 > _tasks(2, Mix())["text_tile"]
    # the earlier stages are untouched, so a continuation's mix never rewrites stage 0 or 1
    assert mix.weights(0) == STAGE_TASKS[0] and mix.weights(1) == STAGE_TASKS[1]


def test_tile_shares_change_which_strings_text_tiles_show():
    def chart_share(mix: Mix) -> float:
        tiles = [draw_sample(seed, 0, mix).sample for seed in range(150)]
        tiles = [t for t in tiles if t.task == "text_tile"]
        # chart strings: a label word or a bare number; page strings carry spaces or punctuation more often
        charty = sum(all(_is_chart_string(line) for line in t.truth["lines"]) for t in tiles)
        return charty / len(tiles)

    assert chart_share(parse_mix(None, "money=0,chart=0.9")) > chart_share(Mix()) + 0.4


def _is_chart_string(line: str) -> bool:
    from nanovl.train.data.charts import _THEMES, _TITLES

    words = {w for theme, _ in _THEMES for w in theme} | set(_TITLES)
    return line in words or line.replace(".", "", 1).isdigit()


@pytest.mark.parametrize("weights,shares", [("nonsense=1", None), ("text_tile", None), ("chart=-1", None), ("chart=nan", None), ("chart=abc", None),
                                            (",".join(f"{t}=0" for t in STAGE_TASKS[2]), None),
                                            (None, "money=0.6,chart=0.6"), (None, "pages=0.2")])
def test_bad_mix_is_an_error(weights, shares):
    with pytest.raises(ValueError):
        parse_mix(weights, shares)


def test_recipe_refuses_a_bad_mix_before_training(capsys):
    from nanovl.train.recipe import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--out", "/tmp/never", "--mix", "charts=3"])
    assert "--mix" in capsys.readouterr().err
