"""`nanovl train`: the staged recipe of the shipped tiny model.

Stage 0 (optional, `--stage0-steps`) reads the strings on single text tiles; stage 1
(vision-language alignment) reads documents (every line, or single fields), chart values and video
timings; stage 2 is supervised fine-tuning on the whole mixture (documents, charts, image pairs,
videos with EVS at a random rate and transcript lines, sums with reasoning on and off). Every
parameter trains in both stages: the tiny model starts from scratch, so there is no language
model worth freezing. Data are made on the fly by worker processes from seeds.

Resumable: `state.pt` holds weights, optimizer, the batch index (= data position) and the
training seconds spent (the learning rate follows a cosine over the time budget). A run can also
continue from an exported checkpoint folder (`--init`), restarting only the optimizer.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import time
from pathlib import Path

import torch

from nanovl.model.presets import preset_config
from nanovl.model.projector import shuffle_and_project
from nanovl.model.vlm import NemotronVL
from nanovl.ops.dispatch import use_reference_ops, use_training_ops
from nanovl.testing.random_checkpoint import random_tensor
from nanovl.train.collate import MediaIds, batch_loss
from nanovl.train.dataset import CurriculumStream, StageSchedule, pack
from nanovl.train.samples import parse_mix
from nanovl.train.ship import export_checkpoint, load_into

PRESET = "tiny-trained"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nanovl train", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="run folder: state.pt, log.jsonl, export/")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (built into OUT/tokenizer if absent)")
    p.add_argument("--split-digits", action="store_true",
                   help="a tokenizer built here gives every digit its own token (v1/v2 merged digit pairs)")
    p.add_argument("--preset", default=PRESET)
    p.add_argument("--steps", type=int, default=100_000, help="stop after this many batches in total")
    p.add_argument("--time-budget", type=float, default=1080.0, help="training seconds the LR schedule spans")
    p.add_argument("--time-limit", type=float, default=None, help="stop this call after so many seconds")
    p.add_argument("--stage0-steps", type=int, default=0,
                   help="batches of text tiles (reading single 128 px tiles) before stage 1")
    p.add_argument("--stage0-batch-size", type=int, default=None,
                   help="stage-0 batch size (default 4x --batch-size: a tile costs ~1/10 of a page)")
    p.add_argument("--stage1-steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4, help="peak LR (1.5e-3 left small-text reading at chance)")
    p.add_argument("--vision-lr-scale", type=float, default=0.1,
                   help="the ViT's LR is this times --lr (at 1.0 the from-scratch ViT collapses to an "
                        "image-independent output within ~50 steps; docs/TRAINING_NOTES.md)")
    p.add_argument("--projector-lr-scale", type=float, default=1.0,
                   help="the projector's (mlp1) LR is this times --lr")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--decay-fraction", type=float, default=1.0,
                   help="the LR holds its peak, then falls (cosine, to 5%%) over this last fraction of the "
                        "time budget; 1.0 is a cosine over the whole budget. v3's cosine left its last "
                        "stage at LR <= 1e-4 (docs/TRAINING_NOTES.md section 9)")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--token-cap", type=int, default=None,
                   help="an example counts as at most this many tokens in the loss (default: every token alike)")
    p.add_argument("--mix", default=None, metavar="TASK=W,...",
                   help="stage-2 task weights that replace the curriculum's (samples.STAGE_TASKS[2]), e.g. "
                        "text_tile=2,chart=3 for a continuation that spends its time on reading")
    p.add_argument("--tile-shares", default=None, metavar="money=S,chart=S",
                   help="shares of text tiles that show documents' totals / charts' strings (default 0.1 each)")
    p.add_argument("--questions-per-image", type=int, default=1, metavar="K",
                   help="ask each drawn page or chart K different questions (one render, K examples; the "
                        "tasks keep their shares of the examples): fewer distinct images for less data-worker "
                        "time per example, when the workers cannot keep up with the GPU")
    p.add_argument("--clean-pages", type=float, default=0.0, metavar="S",
                   help="share of the document and sums pages drawn without rotation or noise, as "
                        "born-digital pages are (default 0: every page augmented)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=4, help="torch threads of the training process")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--init", default=None, help="start from an exported checkpoint folder")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--export", default=None, help="export folder (default OUT/export)")
    p.add_argument("--max-shard-mb", type=float, default=None, help="shard the export above this size")
    p.add_argument("--no-state", action="store_true", help="do not write state.pt (only the export)")
    p.add_argument("--repeat-batch", action="store_true", help="train on batch 0 only (smoke test)")
    p.add_argument("--fast-ops", action=argparse.BooleanOptionalAction, default=None,
                   help="training op mode (default on with CUDA): fla's differentiable SSD scan and "
                        "cache-free SDPA attention; --no-fast-ops runs every op's reference through a KV cache")
    args = p.parse_args(argv)
    try:
        # parsed once, here, so a bad value stops the run before any work; the loader takes this Mix
        args.curriculum_mix = parse_mix(args.mix, args.tile_shares, args.questions_per_image, args.clean_pages)
    except ValueError as e:
        p.error(str(e))
    return args


def new_model(cfg, seed: int, init: str | Path | None = None) -> NemotronVL:
    """The training model of `cfg`: name-aware random init (`init_weights`), then the weights of the
    checkpoint folder `init` when given (`ship.load_into`: every key must match)."""
    model = NemotronVL(cfg, num_prefix_tokens=cfg.vision.num_prefix_tokens)
    init_weights(model, seed)
    if init is not None:
        load_into(model, init)
    return model


def init_weights(model: NemotronVL, seed: int) -> None:
    """Name-aware random init (the random-checkpoint writer's rules: residual outputs scaled down)."""
    gen = torch.Generator().manual_seed(seed)
    depth = {"vision": model.config.vision.num_hidden_layers, "text": model.config.text.num_layers}
    with torch.no_grad():
        for name, p in model.named_parameters():
            d = depth["vision" if name.startswith("vision_model.") else "text"]
            t = random_tensor(name, tuple(p.shape), gen, depth=d)
            if name.endswith("embeddings.weight"):
                t = t * 0.1  # unit-variance rows would dwarf the scaled image tokens at the start
            p.copy_(t.to(p.dtype))


def media_ids(tokenizer_dir: Path) -> MediaIds:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    return MediaIds(tok.token_to_id("<image>"), tok.token_to_id("<img>"), tok.token_to_id("</img>"))


def make_optimizer(model: NemotronVL, lr: float, weight_decay: float,
                   vision_lr_scale: float = 1.0, projector_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """AdamW; matrices (not embeddings) decay. Each group's `lr_scale` multiplies the scheduled LR:
    `vision_lr_scale` for `vision_model.*`, `projector_lr_scale` for `mlp1.*`, 1 for the LM."""
    def part(name: str) -> str:
        return "vision" if name.startswith("vision_model.") else "projector" if name.startswith("mlp1.") else "lm"

    # the LM's groups first: the log reports param_groups[0]'s LR
    scales = {"lm": 1.0, "vision": vision_lr_scale, "projector": projector_lr_scale}
    groups = []
    for which, scale in scales.items():
        named = [(n, p) for n, p in model.named_parameters() if part(n) == which]
        decay = [p for n, p in named if p.dim() >= 2 and "embeddings" not in n]
        rest = [p for n, p in named if not (p.dim() >= 2 and "embeddings" not in n)]
        groups += [{"params": decay, "weight_decay": weight_decay, "lr_scale": scale, "lr": lr * scale},
                   {"params": rest, "weight_decay": 0.0, "lr_scale": scale, "lr": lr * scale}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def lr_at(args, steps_since_optimizer_start: int, seconds: float) -> float:
    """Warmup over the first steps of a fresh optimizer (a new run or `--init`; a state.pt resume
    keeps Adam's moments, so it needs none); then the peak until the last `decay_fraction` of the
    time budget, and a cosine to 5% over that last part."""
    warm = min(1.0, (steps_since_optimizer_start + 1) / max(1, args.warmup))
    frac = min(1.0, max(1e-6, args.decay_fraction))
    progress = min(1.0, max(0.0, seconds / args.time_budget - (1.0 - frac)) / frac)
    return args.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _schedule(args) -> StageSchedule:
    return StageSchedule(args.stage1_steps, args.stage0_steps)


def pixel_dtype_for(device: torch.device) -> torch.dtype:
    """The dtype batches carry their pixels in: a bf16-autocast (CUDA) run rounds them to bf16 at the
    patch embedding anyway (dataset.pack), so they travel at half the bytes; the CPU run stays fp32."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _loader(args, tok_dir: Path, cfg, start: int, device: torch.device):
    pixel_dtype = pixel_dtype_for(device)
    stream = CurriculumStream(str(tok_dir), seed=args.seed, batch_size=args.batch_size, start=start,
                              stage_of=_schedule(args),
                              stage0_batch_size=args.stage0_batch_size or 4 * args.batch_size,
                              image_size=cfg.force_image_size,
                              max_tiles=cfg.max_num_tiles, mean=cfg.norm_mean, std=cfg.norm_std,
                              pixel_dtype=pixel_dtype, mix=args.curriculum_mix)
    if args.workers <= 0 or args.repeat_batch:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
        if args.repeat_batch:
            fixed = pack(stream.batch(0, tok), pixel_dtype)
            return iter(lambda: fixed, None)
        return (pack(stream.batch(b, tok), pixel_dtype) for b in range(start, 1 << 40))
    # batches pass through as the workers made them (no default_convert walk over the Examples);
    # the pin thread pins each PackedBatch's one pixel tensor while the GPU trains
    return iter(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=args.workers,
                                            collate_fn=_as_is, pin_memory=device.type == "cuda",
                                            prefetch_factor=4, persistent_workers=False))


def _as_is(batch):
    return batch


def main(argv: list[str] | None = None) -> dict:
    """Train; returns the last logged record."""
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok_dir = Path(args.tokenizer) if args.tokenizer else out / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        from nanovl.train.vocab import build_curriculum_tokenizer

        build_curriculum_tokenizer(tok_dir, split_digits=args.split_digits)
    elif args.split_digits:
        from nanovl.train.vocab import splits_digits

        # the flag only shapes a tokenizer built here; on an existing pair-merging one it would be
        # silently ignored and a whole run trained on the tokenizer it meant to replace
        if not splits_digits(tok_dir):
            raise SystemExit(f"--split-digits: {tok_dir} holds a tokenizer that merges digits; "
                             "drop --tokenizer (one is built into OUT/tokenizer) or point it at a digit-splitting one")
    cfg = preset_config(args.preset)
    device = torch.device(args.device)
    # the data workers own the other cores; an oversubscribed main process launches GPU work late
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = new_model(cfg, args.seed)
    opt = make_optimizer(model, args.lr, args.weight_decay, args.vision_lr_scale, args.projector_lr_scale)
    step, seconds = 0, 0.0
    optimizer_start = None  # the batch at which this Adam began: its warmup counts from there
    state_path = out / "state.pt"
    if state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step, seconds = st["step"], st["seconds"]
        # states written before this key existed warm up again, as they always did
        optimizer_start = st.get("optimizer_start", step)
        print(f"resumed from {state_path} at batch {step} ({seconds:.0f} s trained)", flush=True)
    elif args.init:
        load_into(model, args.init)
        meta = json.loads((Path(args.init) / "train_meta.json").read_text()) if (
            Path(args.init) / "train_meta.json").exists() else {}
        step, seconds = meta.get("step", 0), meta.get("seconds", 0.0)
        print(f"continuing from {args.init} at batch {step} ({seconds:.0f} s trained), fresh optimizer", flush=True)
    if optimizer_start is None:
        optimizer_start = step
    model.to(device).train()
    _move_optimizer(opt, device)
    ids = media_ids(tok_dir)
    batches = _loader(args, tok_dir, cfg, step, device)
    use_amp = device.type == "cuda"
    fast_ops = device.type == "cuda" if args.fast_ops is None else args.fast_ops
    if fast_ops:
        first = next(batches)
        batches = itertools.chain([first], batches)
        fast_ops = fast_ops_work(model, first, ids, use_amp)
    print(f"ops: {'training mode (differentiable kernels, cache-free attention)' if fast_ops else 'reference'}",
          flush=True)
    log = (out / "log.jsonl").open("a")
    t_call, acc = time.time(), _Acc()
    record: dict = {}
    # the model, optimizer and loader objects live all run: out of the collector's sight, a full
    # collection no longer walks them between steps
    gc.collect()
    gc.freeze()
    with use_training_ops() if fast_ops else use_reference_ops():
        while step < args.steps:
            if args.time_limit is not None and time.time() - t_call > args.time_limit:
                break
            t0 = time.time()
            batch = next(batches)
            t_data = time.time() - t0
            for g in opt.param_groups:
                g["lr"] = lr_at(args, step - optimizer_start, seconds) * g.get("lr_scale", 1.0)
            res, gnorm = train_step(model, opt, batch, ids, use_amp=use_amp, kv_cache=not fast_ops,
                                    token_cap=args.token_cap)
            step += 1
            acc.add(res, batch, t_data, time.time() - t0 - t_data, gnorm)
            seconds += time.time() - t0
            if step % args.log_every == 0 or step == args.steps:
                record = acc.record(step, seconds, opt.param_groups[0]["lr"], _schedule(args)(step - 1))
                record.update(image_spreads(model, batch))
                print(json.dumps(record), flush=True)
                log.write(json.dumps(record) + "\n")
                log.flush()
                acc = _Acc()
            if step % args.save_every == 0 and not args.no_state:
                _save_state(state_path, model, opt, step, seconds, optimizer_start)
    gc.unfreeze()
    if not args.no_state:
        _save_state(state_path, model, opt, step, seconds, optimizer_start)
    export = Path(args.export) if args.export else out / "export"
    max_bytes = int(args.max_shard_mb * 2 ** 20) if args.max_shard_mb else None
    export_checkpoint(model, export, preset=args.preset, tokenizer_dir=tok_dir, max_shard_bytes=max_bytes)
    meta = {"step": step, "seconds": seconds, "seed": args.seed, "batch_size": args.batch_size}
    if args.mix or args.tile_shares or args.questions_per_image != 1 or args.clean_pages:
        # this call's override of the curriculum
        meta.update(mix=args.mix, tile_shares=args.tile_shares, questions_per_image=args.questions_per_image,
                    clean_pages=args.clean_pages)
    (export / "train_meta.json").write_text(json.dumps(meta) + "\n")
    print(f"stopped at batch {step} after {seconds:.0f} s of training; exported {export}", flush=True)
    return record


def train_step(model: NemotronVL, opt: torch.optim.Optimizer, batch, ids: MediaIds, *, use_amp: bool,
               kv_cache: bool = False, token_cap: int | None = None) -> tuple[dict, torch.Tensor]:
    """One optimizer step on `batch`: bf16 autocast forward (when `use_amp`), backward, gradients
    clipped to norm 1, AdamW. Returns batch_loss's dict and the gradient norm before clipping."""
    with torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16, enabled=use_amp):
        res = batch_loss(model, batch, ids, kv_cache=kv_cache, token_cap=token_cap)
    opt.zero_grad(set_to_none=True)
    res["loss"].backward()
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return res, gnorm


def fast_ops_work(model: NemotronVL, batch, ids: MediaIds, use_amp: bool) -> bool:
    """One forward + backward in training op mode before the run. The dispatcher catches kernels
    that fail in the forward; one failing in its backward (fla's Triton backward compiling on
    first use) would stop the run, so it turns fast ops off instead."""
    device = next(model.parameters()).device
    try:
        with use_training_ops(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = batch_loss(model, batch, ids)["loss"]
        loss.backward()
        return True
    except torch.OutOfMemoryError:
        raise
    except Exception as e:
        print(f"fast ops off: a training step failed with them ({type(e).__name__}: {e})", flush=True)
        return False
    finally:
        model.zero_grad(set_to_none=True)


def image_spreads(model: NemotronVL, batch, max_tiles: int = 32) -> dict[str, float]:
    """How image-dependent the vision path is on this batch's first image tiles: `vit_spread`, the
    between-tile std of the ViT features over their RMS (~0.2 at init), and `proj_spread`, the
    between-token std of the projected image tokens over their RMS (0.4-0.7 at init). Near 0 means
    that stage collapsed to one image-independent output: the second GPU run (2026-12-02) ended at
    proj_spread 0.02-0.06 with vit_spread 0.1-0.2, its projector had switched the image off."""
    tiles = [m.pixel_values for ex in batch for m in ex.media if m.kind == "image"]
    if not tiles:
        return {}
    x = torch.cat(tiles)[:max_tiles].to(next(model.parameters()).device)
    if x.shape[0] < 2:
        return {}
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.is_cuda):
        f = model.vision_model(x)
        p = model.config.vision.patch_size
        e = shuffle_and_project(f, x.shape[-2] // p, x.shape[-1] // p, model.mlp1).float().flatten(0, 1)
        f = f.float()
    return {"vit_spread": round(float(f.std(0).mean() / f.pow(2).mean().sqrt()), 4),
            "proj_spread": round(float(e.std(0).pow(2).mean().sqrt() / e.pow(2).mean().sqrt()), 4)}


class _Acc:
    """Running sums between two log lines.

    The step's figures are summed as tensors where they were computed and read once per log line:
    reading each step's loss (`float(...)`) waited for the GPU to finish that step, so the host
    could never prepare the next batch while the GPU worked on this one.
    """

    def __init__(self):
        self.n, self.examples, self.t_data, self.t_step, self.tasks = 0, 0, 0.0, 0.0, {}
        self.t_make = 0.0  # the workers' seconds making these batches (PackedBatch.make_s)
        self.sums: torch.Tensor | None = None  # loss, correct, tokens, exact, grad norm

    def add(self, res, batch, t_data: float, t_step: float, gnorm: torch.Tensor) -> None:
        """`t_step`: host seconds in the step itself (launches, and any wait inside it)."""
        row = torch.stack([res["loss"].detach().float(), res["correct"].float(), res["tokens"].float(),
                           res["exact"].float(), gnorm.detach().float()])
        self.sums = row if self.sums is None else self.sums + row
        self.n += 1
        self.examples += len(batch)
        self.t_data += t_data
        self.t_step += t_step
        self.t_make += getattr(batch, "make_s", 0.0)
        for ex in batch:
            self.tasks[ex.task] = self.tasks.get(ex.task, 0) + 1

    def record(self, step, seconds, lr, stage: int) -> dict:
        n = max(1, self.n)
        loss, correct, tokens, exact, gnorm = self.sums.tolist() if self.sums is not None else [0.0] * 5
        return {"step": step, "stage": stage, "seconds": round(seconds, 1),
                "loss": round(loss / n, 4), "token_acc": round(correct / max(1, tokens), 4),
                "exact": round(exact / max(1, self.examples), 4), "lr": round(lr, 6),
                "grad_norm": round(gnorm / n, 3), "data_wait_s": round(self.t_data / n, 3),
                "step_host_s": round(self.t_step / n, 3), "batch_make_s": round(self.t_make / n, 3),
                "tasks": self.tasks}


def _move_optimizer(opt: torch.optim.Optimizer, device: torch.device) -> None:
    for st in opt.state.values():
        for k, v in st.items():
            if torch.is_tensor(v) and k != "step":
                st[k] = v.to(device)


def _save_state(path: Path, model, opt, step: int, seconds: float, optimizer_start: int) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "seconds": seconds,
                "optimizer_start": optimizer_start}, tmp)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
