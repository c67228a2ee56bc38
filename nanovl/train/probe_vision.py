"""What a checkpoint's image tokens carry: linear probes for the colour and the shape of one object
on a video frame, read from the projector's output (the LM's view of the frame).

When a model names every shape wrongly, this separates "the vision side lost it" (probe near
chance: 25 % colour, 33 % shape) from "the LM never learned to say it" (probe near 100 %).

    python -m nanovl.train.probe_vision [--model DIR] [--n 600]
"""
from __future__ import annotations

import argparse
import random

import torch

from nanovl.inputs.image import normalize
from nanovl.llm import BUNDLED_MODEL
from nanovl.model.presets import preset_config
from nanovl.train.data import videos as V
from nanovl.train.dataset import _frame_tile
from nanovl.train.recipe import PRESET, new_model


def one_object_frames(n: int, seed: int = 5) -> tuple[list, torch.Tensor, torch.Tensor]:
    """n frames, each with one static shape of a random colour, shape, lane and x; and its labels."""
    rng = random.Random(seed)
    colours = list(V.COLORS)
    frames, colour, shape = [], [], []
    for _ in range(n):
        c, s, lane = rng.choice(colours), rng.choice(V.SHAPES), rng.randrange(V.NUM_LANES)
        x = rng.uniform(14, V.DEFAULT_SIZE - 14)
        event = V.VideoEvent("shape", 0.0, 10.0, lane, s, c, "static", x, x)
        script = V.VideoScript(10.0, 4, V.DEFAULT_SIZE, (rng.randint(20, 60),) * 3, (event,))
        frames.append(V.render_frame(script, 1.0))
        colour.append(colours.index(c))
        shape.append(V.SHAPES.index(s))
    return frames, torch.tensor(colour), torch.tensor(shape)


def probe_accuracy(feats: torch.Tensor, labels: torch.Tensor, classes: int, *, train: int, steps: int = 300) -> float:
    """Held-out accuracy of an L2-regularised softmax regression fit on the first `train` rows."""
    mean, std = feats[:train].mean(0), feats[:train].std(0) + 1e-5
    x = (feats - mean) / std
    gen = torch.Generator().manual_seed(0)
    w = (0.01 * torch.randn(x.shape[1], classes, generator=gen)).requires_grad_()
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=1e-2)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(x[:train] @ w + b, labels[:train]) + 1e-3 * w.square().sum()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float(((x[train:] @ w + b).argmax(1) == labels[train:]).float().mean())


@torch.no_grad()
def probe(model_dir: str | None, n: int = 600) -> dict[str, float]:
    """Colour and shape probe accuracy (max over a frame's image tokens); model_dir None: random init."""
    cfg = preset_config(PRESET)
    model = new_model(cfg, 0, model_dir)
    frames, colour, shape = one_object_frames(n)
    pixels = normalize(torch.cat([_frame_tile(f, cfg.force_image_size) for f in frames]), cfg.norm_mean, cfg.norm_std)
    tokens = model.eval().encode_images(pixels).float()  # [n, tokens per frame, D]
    pooled = tokens.amax(1)
    train = n * 2 // 3
    return {"colour": probe_accuracy(pooled, colour, len(V.COLORS), train=train),
            "shape": probe_accuracy(pooled, shape, len(V.SHAPES), train=train)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nanovl.train.probe_vision", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(BUNDLED_MODEL), help="checkpoint folder (default: the bundled tiny model)")
    p.add_argument("--n", type=int, default=600, help="frames (2/3 fit the probe, 1/3 score it)")
    args = p.parse_args(argv)
    for name, folder in (("random init", None), (args.model, args.model)):
        r = probe(folder, args.n)
        print(f"{name}: colour {r['colour']:.1%} (chance 25%), shape {r['shape']:.1%} (chance 33%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
