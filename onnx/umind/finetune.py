"""Teaches a trained umind-nano to follow the task in its prompt, the way
UMind-VL's task tokens follow the instruction: after

    [DIAG]            the report, then [SEG] [DET]: kernels for every lesion
    [SEG] cyst        [SEG] [DET]: kernels for the cysts only
    [SEG] mass        [SEG] [DET]: kernels for the solid masses only
    [SEG] lesion      [SEG] [DET]: kernels for every lesion, no report

The vision encoder and the mask decoder are frozen (the per-frame path and
the shipped default kernels stay exactly as they were); only the token
embeddings, the language model and the kernel projector learn. A mixed batch
keeps the [DIAG] report as it was trained.

Appends its stage (command, folders, seconds) to the checkpoint's
train-log.json and writes it to OUT (see provenance.py).

    cd onnx && python -m umind.finetune --checkpoint ../out/umind-train/checkpoint.pt --data ../out/umind-data --out ../out/umind-tasks --steps 500 --seed 11
"""
import argparse
import json
import math
import pathlib
import shutil
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import data, provenance, report
from .model import UMindNano
from .train import CACHE, TRAIN_SPLITS, batch_tensors, mask_loss

CLASS_PROMPTS = {"cyst": "[SEG] cyst", "mass": "[SEG] mass", "lesion": "[SEG] lesion"}
TASK_ANSWER = "[SEG] [DET] [EOS]"


def class_masks(records, cache):
    """Per frame, the cyst mask and the mass mask (N,2,256,256 uint8), resampled like the images."""
    cache = pathlib.Path(cache).with_suffix(".npz")
    if cache.exists():
        return np.load(cache)["classes"]
    out = np.zeros((len(records), 2, data.SIZE, data.SIZE), np.uint8)
    for i, rec in enumerate(records):
        labels = np.asarray(Image.open(pathlib.Path(rec["export"]) / rec["labels"]))
        plan = data.ResizePlan(labels.shape[1], labels.shape[0], rec["region"])
        for c, cls in enumerate(["cyst", "mass"]):
            wanted = [l["label"] for l in rec["lesions"] if l["class"] == cls]
            m = np.isin(labels, wanted).astype(np.float32)
            out[i, c] = (np.nan_to_num(plan.sample(m), nan=0.0) * 255).round().astype(np.uint8)
        if i % 1000 == 0:
            print(f"class masks {i}/{len(records)}", flush=True)
    np.savez(cache, classes=out)
    return out


def sequence(tokenizer, prompt, answer):
    """ids of prompt + answer, the LM targets (prompt positions ignored) and the task positions in the answer."""
    p = tokenizer.encode(prompt).ids
    a = tokenizer.encode(answer).ids
    ids = p + a
    task_ids = [tokenizer.token_to_id(t) for t in report.TASKS]
    positions = [len(p) + a.index(t) for t in task_ids]
    return ids, len(p), positions


def make_batch(tokenizer, kinds, reports, index):
    rows, starts, positions = [], [], []
    for kind, i in zip(kinds, index):
        if kind == "diag":
            ids, start, pos = sequence(tokenizer, report.PROMPT, reports[i])
        else:
            ids, start, pos = sequence(tokenizer, CLASS_PROMPTS[kind], TASK_ANSWER)
        rows.append(ids), starts.append(start), positions.append(pos)
    pad = tokenizer.token_to_id("[PAD]")
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad, np.int64)
    targets = np.full((len(rows), width), pad, np.int64)
    for r, (row, start) in enumerate(zip(rows, starts)):
        ids[r, : len(row)] = row
        # Position j predicts token j+1; only the answer is learnt.
        for j in range(start - 1, len(row) - 1):
            targets[r, j] = row[j + 1]
    return torch.from_numpy(ids), torch.from_numpy(targets), torch.from_numpy(np.array(positions, np.int64))


def targets_for(kinds, index, masks, classes, flip):
    out = []
    for kind, i in zip(kinds, index):
        if kind in ("diag", "lesion"):
            out.append(masks[i])
        else:
            out.append(classes[i, 0 if kind == "cyst" else 1])
    t = torch.from_numpy(np.stack(out).astype(np.float32) / 255.0).unsqueeze(1)
    if flip is not None:
        t[flip] = t[flip].flip(-1)
    return t


def choose(rng, n, both, anything, class_share=0.5, both_share=0.5):
    """[DIAG] and [SEG] lesion on any frame; `class_share` of the batch class
    prompts, `both_share` of those on frames holding a cyst and a mass."""
    kinds, index = [], []
    for _ in range(n):
        r = rng.random()
        if r < 1 - class_share:
            kinds.append("diag" if r < 0.8 * (1 - class_share) else "lesion")
            index.append(int(rng.choice(anything)))
        else:
            kinds.append("cyst" if rng.random() < 0.5 else "mass")
            index.append(int(rng.choice(both if rng.random() < both_share else anything)))
    return kinds, np.array(index)


@torch.no_grad()
def class_dice(model, tokenizer, images, masks, classes, reports, frames):
    """Dice of the [SEG] mask for each prompt on `frames`."""
    model.eval()
    result = {}
    for kind in ["diag", "lesion", "cyst", "mass"]:
        dices = []
        for start in range(0, len(frames), 32):
            index = frames[start : start + 32]
            kinds = [kind] * len(index)
            ids, _, positions = make_batch(tokenizer, kinds, reports, index)
            x, _ = batch_tensors(images, masks, index, None)
            t = targets_for(kinds, index, masks, classes, None)
            _, logits, _, _, _, _ = model(x, ids, positions)
            up = F.interpolate(logits[:, :1], size=t.shape[-2:], mode="bilinear", align_corners=False)
            p, g = (up > 0).float(), (t > 0.5).float()
            inter, denom = (p * g).sum((-1, -2)), p.sum((-1, -2)) + g.sum((-1, -2))
            dices += torch.where(denom > 0, 2 * inter / denom.clamp(min=1), torch.ones_like(denom)).flatten().tolist()
        result[kind] = float(np.mean(dices))
    return result


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="out/umind-train/checkpoint.pt")
    ap.add_argument("--data", default="out/umind-data")
    ap.add_argument("--out", default="out/umind-tasks")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--class-share", type=float, default=0.5, help="share of each batch with a class prompt")
    ap.add_argument("--both-share", type=float, default=0.5, help="share of class prompts on frames with a cyst and a mass")
    args = ap.parse_args(argv)
    stage_started = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    root, out = pathlib.Path(args.data), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = torch.load(args.checkpoint, map_location="cpu")
    shutil.copy(pathlib.Path(args.checkpoint).parent / "tokenizer.json", out / "tokenizer.json")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    model = UMindNano(ckpt["vocab"])
    model.load_state_dict(ckpt["model"])
    for part in (model.encoder, model.mask_decoder, model.descriptors):
        part.requires_grad_(False)

    images, masks, _, reports, records = data.load_split([root / s for s in TRAIN_SPLITS], root / "cache" / f"train-{CACHE}")
    classes = class_masks(records, root / "cache" / "train-classes-v1")
    val_images, val_masks, _, val_reports, val_records = data.load_split([root / "val"], root / "cache" / f"val-{CACHE}")
    val_classes = class_masks(val_records, root / "cache" / "val-classes-v1")
    both = np.array([i for i, r in enumerate(records) if {l["class"] for l in r["lesions"]} == {"cyst", "mass"}])
    anything = np.arange(len(images))
    val_both = np.array([i for i, r in enumerate(val_records) if {l["class"] for l in r["lesions"]} == {"cyst", "mass"}])
    val_frames = val_both if len(val_both) >= 32 else np.arange(min(96, len(val_images)))
    print(f"train {len(images)} frames ({len(both)} with a cyst and a mass), val {len(val_frames)} frames", flush=True)

    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=1e-4)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))
    )
    pad = tokenizer.token_to_id("[PAD]")
    log, started = [], time.time()
    log.append({"step": 0, "val_dice": class_dice(model, tokenizer, val_images, val_masks, val_classes, val_reports, val_frames)})
    print(json.dumps(log[-1]), flush=True)
    for step in range(1, args.steps + 1):
        model.train()
        model.encoder.eval()
        kinds, index = choose(rng, args.batch, both, anything, args.class_share, args.both_share)
        flip = torch.from_numpy(rng.random(args.batch) < 0.5)
        x, _ = batch_tensors(images, masks, index, flip)
        target = targets_for(kinds, index, masks, classes, flip)
        ids, lm_targets, positions = make_batch(tokenizer, kinds, reports, index)
        lm_logits, mask_logits, _, _, _, _ = model(x, ids, positions)
        lm = F.cross_entropy(lm_logits.reshape(-1, lm_logits.shape[-1]), lm_targets.reshape(-1), ignore_index=pad)
        seg = mask_loss(mask_logits, target)
        loss = lm + seg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        if step % 25 == 0 or step == args.steps:
            entry = {"step": step, "seconds": round(time.time() - started, 1), "loss": loss.item(), "lm": lm.item(), "seg": seg.item()}
            if step % 250 == 0 or step == args.steps:
                entry["val_dice"] = class_dice(model, tokenizer, val_images, val_masks, val_classes, val_reports, val_frames)
            log.append(entry)
            print(json.dumps(entry), flush=True)
    # A fine-tune of a fine-tune adds its steps (the provenance counts them all).
    before = ckpt.get("finetune", {"steps": 0})
    torch.save({"model": model.state_dict(), "vocab": ckpt["vocab"], "step": ckpt["step"], "args": ckpt["args"],
                "finetune": {"steps": before["steps"] + args.steps, "seed": args.seed, "batch": args.batch}}, out / "checkpoint.pt")
    previous = provenance.read_log(pathlib.Path(args.checkpoint).parent / "train-log.json")
    previous["stages"].append(provenance.stage(
        "finetune", "finetune", argv, args, stage_started, checkpoint=args.checkpoint, out=args.out,
        val_frames=len(val_frames), training_seconds=round(time.time() - started, 1), log=log))
    provenance.write_log(out / "train-log.json", previous)


if __name__ == "__main__":
    main()
