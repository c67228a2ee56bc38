"""EVS on a 60-second video: prompt tokens and preprocessing time at pruning rates q.

Run: `python bench/bench_evs.py [--model DIR] [--out evs.json]` (CPU or GPU; default model: the
bundled tiny one). Writes a synthetic 60 s clip with PyAV (a still scene with one moving square
and a caption that changes every 10 s, so consecutive frames are mostly redundant, as in real
footage), then for each q: decode + sample at 2 fps, ViT + projector, EVS, and the full prompt
with per-frame counts. Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from nanovl.inputs.media_prompt import video_placeholder
from nanovl.inputs.video import load_video

RATES = (0.0, 0.5, 0.75, 0.9)


def write_clip(path: Path, seconds: int = 60, fps: int = 24, size: tuple[int, int] = (320, 240)) -> Path:
    """A still background, a square crossing it, and a bar whose colour changes every 10 s."""
    w, h = size
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(seconds * fps):
            frame = background.copy()
            x = int((i / (seconds * fps)) * (w - 40))
            frame[100:140, x:x + 40] = (255, 0, 0)
            frame[:20] = (40 * ((i // (10 * fps)) % 6),) * 3
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def measure(model, clip: Path, q: float, *, image_size: int, mean, std) -> dict:
    """Decode, encode and prune once; times each stage (the model runs in inference mode)."""
    t0 = time.perf_counter()
    video = load_video(clip, image_size=image_size, mean=mean, std=std)
    t1 = time.perf_counter()
    device = next(model.parameters()).device
    with torch.inference_mode():
        kept, counts = model.encode_video(video.pixel_values.to(device), q)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    prompt = video_placeholder(video.timestamps, counts)
    return {"q": q, "frames": len(video.timestamps), "video_tokens": int(kept.shape[0]),
            "prompt_chars": len(prompt), "decode_s": t1 - t0, "encode_evs_s": t2 - t1, "total_s": t2 - t0}


def main(argv: list[str] | None = None) -> int:
    from nanovl.llm import BUNDLED_MODEL
    from nanovl.model.loader import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(BUNDLED_MODEL))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    model = load_model(args.model, device=args.device)
    cfg = model.config
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip60.mp4")
        measure(model, clip, 0.0, image_size=cfg.force_image_size, mean=cfg.norm_mean, std=cfg.norm_std)  # warm-up
        rows = [measure(model, clip, q, image_size=cfg.force_image_size, mean=cfg.norm_mean, std=cfg.norm_std)
                for q in RATES]
    print(f"60 s video, {rows[0]['frames']} frames at 2 fps | model {args.model} | {args.device} "
          f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    print(f"{'q':>5} {'video tokens':>13} {'of q=0':>7} {'decode s':>9} {'ViT+EVS s':>10} {'total s':>8}")
    for r in rows:
        print(f"{r['q']:>5.2f} {r['video_tokens']:>13} {r['video_tokens'] / rows[0]['video_tokens']:>7.1%} "
              f"{r['decode_s']:>9.3f} {r['encode_evs_s']:>10.3f} {r['total_s']:>8.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "device": args.device, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
