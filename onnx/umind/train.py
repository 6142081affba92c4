"""Trains umind-nano on phantom exports. Reproducible from --seed (same data,
same steps, same initialisation; CPU float maths may still differ in the last
bits between machines). Writes OUT/checkpoint.pt, OUT/tokenizer.json and
OUT/train-log.json, whose first stage records this run (command, folders, the
data from the exports' manifests, seconds; see provenance.py).

A run can stop and go on: every 50 steps it writes OUT/state.pt (weights,
optimiser, schedule, both random generators, the log), `--until N` stops after
step N, and `--resume` goes on from OUT/state.pt when it was written with the
same arguments. The weights come out bit for bit as an unbroken run's (on
the CPU; a CUDA run's generator is saved too, but GPU kernels need not be
deterministic).

    cd onnx && python -m umind.train --data ../out/umind-data --out ../out/umind-train --steps 1800 --seed 7
"""
import argparse
import json
import math
import pathlib
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import data, provenance, report
from .model import IMAGE_TOKENS, UMindNano


def encode_reports(tokenizer, reports):
    """input_ids [n, s] ([DIAG] + report, [PAD]-padded) and task positions [n, tasks]."""
    pad = tokenizer.token_to_id("[PAD]")
    rows = [[tokenizer.token_to_id(report.PROMPT)] + tokenizer.encode(r).ids for r in reports]
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    positions = np.zeros((len(rows), len(report.TASKS)), dtype=np.int64)
    task_ids = [tokenizer.token_to_id(t) for t in report.TASKS]
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        positions[i] = [r.index(t) for t in task_ids]
    return ids, positions


def descriptor_label_table(records):
    """{field: int64 [n]} the value index of each frame's described lesion (-1: none)."""
    rows = [report.descriptor_labels(r["lesions"]) for r in records]
    return {f: np.array([row[f] for row in rows], dtype=np.int64) for f in report.descriptor_fields()}


def descriptor_loss(logits, targets):
    """Mean over fields of the cross-entropy on frames with a lesion (0 when none has one)."""
    losses = [F.cross_entropy(logits[f], targets[f], ignore_index=-1) for f in logits if (targets[f] >= 0).any()]
    return torch.stack(losses).mean() if losses else torch.zeros(())


DESCRIPTOR_WEIGHT = 0.5
TRAIN_SPLITS = ["train", "train-empty", "train-plain"]
CACHE = "v2"


def batch_tensors(images, masks, index, flip, primary=None):
    x = torch.from_numpy(data.normalise(images[index].astype(np.float32))).unsqueeze(1)
    m = torch.from_numpy(masks[index].astype(np.float32) / 255.0).unsqueeze(1)
    p = torch.from_numpy(primary[index].astype(np.float32) / 255.0).unsqueeze(1) if primary is not None else None
    if flip is not None:
        x[flip] = x[flip].flip(-1)
        m[flip] = m[flip].flip(-1)
        if p is not None:
            p[flip] = p[flip].flip(-1)
    return (x, m) if p is None else (x, m, p)


def augment(rng, x, masks):
    """Imaging and framing the phantom does not draw, so that the model leans
    on what a lesion looks like rather than on the phantom's look or where it
    puts things: per frame a grey-level gamma and gain, a Gaussian blur (a
    wider point-spread function) and a zoom with a shift (masks follow the
    image). Draws come from `rng` (seeded). `x` is the normalised input;
    padding stays black."""
    n, device = x.shape[0], x.device
    raw = (x * data.STD + data.MEAN).clamp(0, 1)
    photometric = torch.from_numpy(rng.random(n) < 0.8).to(device)
    gamma = torch.from_numpy(np.exp(rng.uniform(-0.45, 0.45, n))).float().view(n, 1, 1, 1).to(device)
    gain = torch.from_numpy(rng.uniform(0.75, 1.3, n)).float().view(n, 1, 1, 1).to(device)
    shaded = (raw.clamp(min=1e-6) ** gamma * gain).clamp(0, 1)
    raw = torch.where(photometric.view(n, 1, 1, 1), shaded, raw)
    for i in np.flatnonzero(rng.random(n) < 0.4):
        sigma = rng.uniform(0.6, 1.6)
        radius = int(np.ceil(2.5 * sigma))
        t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = k / k.sum()
        img = F.pad(raw[i : i + 1], (radius, radius, radius, radius), mode="replicate")
        img = F.conv2d(img, k.view(1, 1, 1, -1))
        raw[i : i + 1] = F.conv2d(img, k.view(1, 1, -1, 1))
    zoom = rng.random(n) < 0.5
    if zoom.any():
        scale = np.where(zoom, rng.uniform(0.8, 1.25, n), 1.0)
        shift = np.where(zoom[:, None], rng.uniform(-0.12, 0.12, (n, 2)), 0.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = torch.from_numpy(1 / scale).float()
        theta[:, 1, 1] = torch.from_numpy(1 / scale).float()
        theta[:, :, 2] = torch.from_numpy(shift).float()
        grid = F.affine_grid(theta.to(device), list(raw.shape), align_corners=False)
        raw = F.grid_sample(raw, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        masks = [F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False) for m in masks]
    return (raw - data.MEAN) / data.STD, masks


def mask_loss(mask_logits, target, weight=None):
    """BCE + soft Dice of every task's mask (upsampled to the input size) against the lesion mask;
    `weight` (0..1 per pixel) leaves pixels out of both (a faint lesion: neither lesion nor tissue)."""
    up = F.interpolate(mask_logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    t = target.expand_as(up)
    p = torch.sigmoid(up)
    if weight is None:
        bce = F.binary_cross_entropy_with_logits(up, t)
    else:
        w = weight.expand_as(up)
        bce = (F.binary_cross_entropy_with_logits(up, t, reduction="none") * w).sum() / w.sum().clamp(min=1)
        p, t = p * w, t * w
    inter = (p * t).sum((-1, -2))
    dice = 1 - (2 * inter + 1) / (p.sum((-1, -2)) + t.sum((-1, -2)) + 1)
    return bce + dice.mean()


def ignore_batch(faint, index, flip):
    """The faint-lesion masks (data.faint_masks) of the frames `index` (zeros elsewhere), flipped as the batch."""
    out = torch.zeros(len(index), 1, data.SIZE, data.SIZE)
    for k, i in enumerate(index):
        row = faint.get(int(i))
        if row is not None:
            out[k, 0] = torch.from_numpy(row.astype(np.float32) / 255.0)
    out[flip] = out[flip].flip(-1)
    return out


# Arguments that do not change what a run computes: a resumed run may differ in them.
RESUME_FREE = ("resume", "until")


def same_run(saved, args):
    """The arguments where OUT/state.pt's run and this one differ (empty: it may go on)."""
    now = {k: v for k, v in vars(args).items() if k not in RESUME_FREE}
    before = {k: v for k, v in saved.items() if k not in RESUME_FREE}
    return sorted(k for k in now.keys() | before.keys() if now.get(k) != before.get(k))


def save_state(path, model, opt, sched, rng, step, log, seconds, segments, args):
    """Everything an unbroken run would carry into the next step, written whole or not at all."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "torch_cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None, "step": step, "log": log,
                "seconds": seconds, "segments": segments, "args": vars(args)}, tmp)
    tmp.replace(path)


def dice_at_half(mask_logits, target):
    up = F.interpolate(mask_logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    p = (up[:, :1] > 0).float()
    t = (target > 0.5).float()
    inter = (p * t).sum((-1, -2))
    denom = p.sum((-1, -2)) + t.sum((-1, -2))
    has = t.sum((-1, -2)) > 0
    d = torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.ones_like(denom))
    return d[has].mean().item() if has.any() else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="out/umind-data")
    ap.add_argument("--out", default="out/umind-train")
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda); the shipped weights are trained on cpu")
    ap.add_argument("--no-augment", dest="augment", action="store_false", help="train on the phantom's frames as exported")
    ap.add_argument("--ignore-below", type=float, help="leave lesions whose conspicuity is under this out of the mask losses (needs exports that measure it)")
    ap.add_argument("--resume", action="store_true", help="go on from OUT/state.pt (written by a run with the same arguments)")
    ap.add_argument("--until", type=int, help="stop after this step (OUT/state.pt holds it; --resume goes on)")
    args = ap.parse_args(argv)
    stage_started = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    root, out = pathlib.Path(args.data), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = [provenance.split(root / s) for s in TRAIN_SPLITS + ["val"]]

    tokenizer = report.build_tokenizer(out / "tokenizer.json")
    images, masks, primary, reports, records = data.load_split([root / s for s in TRAIN_SPLITS], root / "cache" / f"train-{CACHE}")
    val_images, val_masks, _, val_reports, _ = data.load_split([root / "val"], root / "cache" / f"val-{CACHE}")
    ids, positions = encode_reports(tokenizer, reports)
    val_ids, val_positions = encode_reports(tokenizer, val_reports)
    pad = tokenizer.token_to_id("[PAD]")
    descriptor_targets = descriptor_label_table(records)
    print(f"train {len(images)} frames, val {len(val_images)}, vocab {tokenizer.get_vocab_size()}, report tokens {ids.shape[1]}", flush=True)
    faint = data.faint_masks(records, args.ignore_below) if args.ignore_below is not None else {}
    if args.ignore_below is not None:
        count = sum(1 for r in records for l in r["lesions"] if l.get("conspicuity") is not None and l["conspicuity"] < args.ignore_below)
        print(f"{count} of {sum(len(r['lesions']) for r in records)} lesions under conspicuity {args.ignore_below}, on {len(faint)} frames: left out of the mask losses", flush=True)

    device = torch.device(args.device)
    model = UMindNano(tokenizer.get_vocab_size()).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))
    )
    log, done, seconds_before, segments = [], 0, 0.0, []
    state_path = out / "state.pt"
    if args.resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        differ = same_run(state["args"], args)
        if differ:
            raise SystemExit(f"train: {state_path} was written by a run with other {', '.join(differ)}; "
                             "run without --resume to start afresh (it is overwritten)")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        if state.get("torch_cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["torch_cuda_rng"])
        log, done, seconds_before, segments = state["log"], state["step"], state["seconds"], state["segments"]
        print(f"resuming at step {done} of {args.steps} ({seconds_before:.0f} s of training so far)", flush=True)
    elif args.resume:
        print(f"no {state_path}: starting afresh", flush=True)
    last = min(args.steps, args.until) if args.until is not None else args.steps
    saved = (segments, seconds_before)
    started = time.time()
    step = done
    for step in range(done + 1, last + 1):
        model.train()
        index = rng.choice(len(images), args.batch, replace=False)
        flip = torch.from_numpy(rng.random(args.batch) < 0.5)
        x, m, p = (t.to(device) for t in batch_tensors(images, masks, index, flip, primary))
        ig = ignore_batch(faint, index, flip).to(device) if faint else None
        if args.augment:
            x, augmented = augment(rng, x, [m, p] if ig is None else [m, p, ig])
            m, p = augmented[:2]
            ig = augmented[2] if ig is not None else None
        # Pixels of a faint lesion (and a rim around it) count neither way.
        w = 1 - (ig > 0.01).float() if ig is not None else None
        input_ids = torch.from_numpy(ids[index]).to(device)
        lm_logits, mask_logits, _, kernels, features, saliency, described = model(
            x, input_ids, torch.from_numpy(positions[index]).to(device), with_descriptors=True
        )
        targets = input_ids[:, 1:]
        lm = F.cross_entropy(lm_logits[:, :-1].reshape(-1, lm_logits.shape[-1]), targets.reshape(-1), ignore_index=pad)
        seg = mask_loss(mask_logits, m, w)
        # The shipped default kernels are the projector's mean: keep the
        # features usable by an averaged kernel too.
        mean_logits, _ = model.mask_decoder(features, kernels.mean(0, keepdim=True).expand_as(kernels))
        seg_default = mask_loss(mean_logits, m, w)
        # The region tokens look where the reported (largest) lesion is.
        roi = F.binary_cross_entropy_with_logits(saliency, F.avg_pool2d(p, 4))
        # The region tokens carry the described lesion's descriptors (heads
        # trained only here): the report's words read them from there.
        descriptors = descriptor_loss(described, {f: torch.from_numpy(t[index]).to(device) for f, t in descriptor_targets.items()})
        loss = lm + seg + 0.5 * seg_default + 0.5 * roi + DESCRIPTOR_WEIGHT * descriptors
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == last:
            seconds = seconds_before + time.time() - started
            entry = {"step": step, "seconds": round(seconds, 1), "loss": loss.item(), "lm": lm.item(), "seg": seg.item(), "seg_default": seg_default.item(), "roi": roi.item(), "descriptors": descriptors.item()}
            if step % 400 == 0 or step == args.steps:
                entry["val_dice"] = validate(model, val_images, val_masks, val_ids, val_positions)
            if step % 50 == 0 or step == args.steps:
                log.append(entry)
            print(json.dumps(entry), flush=True)
            torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "vocab": tokenizer.get_vocab_size(), "step": step, "args": vars(args)}, out / "checkpoint.pt")
            saved = (segments + [{"from_step": done, "to_step": step, "started": stage_started, "seconds": round(time.time() - stage_started, 1)}], seconds)
            save_state(state_path, model, opt, sched, rng, step, log, saved[1], saved[0], args)
    if step < args.steps:
        print(f"stopped after step {step} of {args.steps}: go on with --resume", flush=True)
        return
    log_path = out / "train-log.json"
    if done == args.steps:
        # The state's segments and seconds already hold the whole run.
        if log_path.exists():
            print(f"{state_path} holds the finished run ({args.steps} steps): nothing to train", flush=True)
            return
        print(f"{state_path} holds the finished run ({args.steps} steps) but {log_path} is missing: writing it", flush=True)
        training_seconds = seconds_before
    else:
        # As the last state saved them, so that a log rewritten from it is this one.
        segments, training_seconds = saved
    record = provenance.stage("train", "train", argv, args, segments[0]["started"], out=args.out, data=splits,
                              training_seconds=round(training_seconds, 1), log=log,
                              seconds=round(sum(s["seconds"] for s in segments), 1))
    if len(segments) > 1:
        record["segments"] = [dict(s, started=provenance.iso(s["started"])) for s in segments]
    provenance.write_log(log_path, {"format": provenance.FORMAT, "stages": [record]})


@torch.no_grad()
def validate(model, images, masks, ids, positions, n=96):
    model.eval()
    device = next(model.parameters()).device
    dices = []
    for start in range(0, min(n, len(images)), 32):
        index = np.arange(start, min(start + 32, n, len(images)))
        x, m = (t.to(device) for t in batch_tensors(images, masks, index, None))
        _, mask_logits, _, _, _, _ = model(x, torch.from_numpy(ids[index]).to(device), torch.from_numpy(positions[index]).to(device))
        dices.append(dice_at_half(mask_logits, m))
    return float(np.nanmean(dices))


if __name__ == "__main__":
    main()
