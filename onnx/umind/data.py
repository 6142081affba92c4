"""Phantom data for umind-nano: frames exported by `sonoflow phantom export`,
preprocessed exactly as the Rust runtime does (sonoflow_inference::preprocess:
crop the image region's bounding box, letterbox-resize with bilinear sampling,
normalise), and the report each frame should get.

Everything here is numpy; the arrays are cached as .npz beside the export so
that training starts in seconds.
"""
import json
import pathlib

import numpy as np
from PIL import Image

from . import report

SIZE = 256  # model input, pixels
MEAN, STD = 0.5, 0.25
PAD_VALUE = 0


def region_bounds(region):
    """ImageRegion::bounds (f32 maths as in Rust)."""
    if region["kind"] == "rect":
        return tuple(np.float32(region[k]) for k in ("x0", "y0", "x1", "y1"))
    apex, r0, r1, half = region["apex"], np.float32(region["r0"]), np.float32(region["r1"]), np.float32(region["half_angle"])
    half_width = r1 * np.sin(half, dtype=np.float32)
    return (
        np.float32(apex["x"]) - half_width,
        np.float32(apex["y"]) + r0 * np.cos(half, dtype=np.float32),
        np.float32(apex["x"]) + half_width,
        np.float32(apex["y"]) + r1,
    )


class ResizePlan:
    """ResizePlan::new for crop = image-region, resize = letterbox."""

    def __init__(self, width, height, region, size=SIZE):
        bx0, by0, bx1, by1 = region_bounds(region)
        x0 = int(np.floor(max(bx0, 0.0)))
        y0 = int(np.floor(max(by0, 0.0)))
        x1 = min(max(int(np.ceil(bx1)), x0 + 1), width)
        y1 = min(max(int(np.ceil(by1)), y0 + 1), height)
        x0, y0 = min(x0, width - 1), min(y0, height - 1)
        self.crop = (x0, y0, x1 - x0, y1 - y0)
        cw, ch = np.float32(self.crop[2]), np.float32(self.crop[3])
        s = min(np.float32(size) / cw, np.float32(size) / ch)
        self.scale = np.float32(s)
        self.pad_x = np.float32((np.float32(size) - cw * self.scale) / 2)
        self.pad_y = np.float32((np.float32(size) - ch * self.scale) / 2)
        self.x = _axis(size, x0, self.crop[2], self.scale, self.pad_x)
        self.y = _axis(size, y0, self.crop[3], self.scale, self.pad_y)
        self.size = size

    def sample(self, plane):
        """Bilinear resample of a float32 frame plane; padding is NaN."""
        xlo, xhi, xw, xpad = self.x
        ylo, yhi, yw, ypad = self.y
        top = plane[ylo][:, xlo] * (1 - xw) + plane[ylo][:, xhi] * xw
        bottom = plane[yhi][:, xlo] * (1 - xw) + plane[yhi][:, xhi] * xw
        out = top * (1 - yw[:, None]) + bottom * yw[:, None]
        out[ypad, :] = np.nan
        out[:, xpad] = np.nan
        return out.astype(np.float32)

    def to_frame(self, u, v):
        """Model coordinates (corner-based) to frame pixel coordinates."""
        return (self.crop[0] + (u - self.pad_x) / self.scale, self.crop[1] + (v - self.pad_y) / self.scale)


def _axis(model, start, length, scale, pad):
    u = np.arange(model, dtype=np.float32)
    src = (u + np.float32(0.5) - pad) / scale - np.float32(0.5)
    inside = ((u + 0.5) >= pad) & ((u + 0.5) <= pad + np.float32(length) * scale)
    s = np.clip(src, 0, length - 1).astype(np.float32)
    lo = np.floor(s).astype(np.int64)
    hi = np.minimum(lo + 1, length - 1)
    return start + lo, start + hi, (s - lo).astype(np.float32), ~inside


def normalise(sampled):
    """Model input from a resampled 0..255 plane (padding filled with pad_value)."""
    x = np.where(np.isnan(sampled), np.float32(PAD_VALUE), sampled)
    return ((x / 255.0 - MEAN) / STD).astype(np.float32)


def read_records(export_dir):
    export_dir = pathlib.Path(export_dir)
    with open(export_dir / "truth.jsonl") as f:
        return [json.loads(line) for line in f]


def sample_record(job):
    """One exported frame (`job` = (export folder, its truth record)) as the
    model sees it: the resampled image, the lesion mask and the mask of the
    largest lesion (uint8, 0..255 soft), the report, the record with its export."""
    export_dir, rec = job
    export_dir = pathlib.Path(export_dir)
    frame = np.asarray(Image.open(export_dir / rec["image"]), dtype=np.float32)
    labels = np.asarray(Image.open(export_dir / rec["labels"]))
    plan = ResizePlan(frame.shape[1], frame.shape[0], rec["region"])
    image = np.nan_to_num(plan.sample(frame), nan=PAD_VALUE).round().clip(0, 255).astype(np.uint8)
    lesion = (labels >= 10).astype(np.float32)
    mask = (np.nan_to_num(plan.sample(lesion), nan=0.0) * 255).round().astype(np.uint8)
    lesion = report.described(rec["lesions"])
    largest = -1 if lesion is None else lesion["label"]
    first = (labels == largest).astype(np.float32)
    primary = (np.nan_to_num(plan.sample(first), nan=0.0) * 255).round().astype(np.uint8)
    return image, mask, primary, report.for_lesions(rec["lesions"]), dict(rec, export=str(export_dir))


def load_split(export_dirs, cache, map=map):
    """Images (N,256,256 uint8, resampled), lesion masks and masks of the
    largest lesion (the one the report describes) (N,256,256 uint8, 0..255
    soft), reports (list of str) and records, cached in `cache` (.npz + .json).
    `map` runs sample_record over the frames (a process pool's map may)."""
    cache = pathlib.Path(cache)
    if cache.with_suffix(".npz").exists():
        arrays = np.load(cache.with_suffix(".npz"))
        meta = json.loads(cache.with_suffix(".json").read_text())
        return arrays["images"], arrays["masks"], arrays["primary"], meta["reports"], meta["records"]
    jobs = [(str(d), rec) for d in export_dirs for rec in read_records(d)]
    if not jobs:
        raise SystemExit(f"data: no frames in {[str(d) for d in export_dirs]} (truth.jsonl empty): re-run the phantom export")
    images, masks, primary, reports, records = zip(*map(sample_record, jobs))
    images, masks, primary = np.stack(images), np.stack(masks), np.stack(primary)
    reports, records = list(reports), list(records)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache.with_suffix(".npz"), images=images, masks=masks, primary=primary)
    cache.with_suffix(".json").write_text(json.dumps({"reports": reports, "records": records}))
    return images, masks, primary, reports, records


def faint_masks(records, below, grow=2):
    """{frame index: uint8 mask (SIZE x SIZE, 0/255)} of the lesions whose
    conspicuity in their frame (truth.jsonl, `sonoflow phantom export`) is
    under `below`: the pixels the model sees them on, grown by `grow` pixels.
    Training leaves these pixels out of the mask losses (neither lesion nor
    tissue): no searcher could find such a lesion, so a loss that asks for it
    teaches the model to draw lesions where the image shows none
    (docs/experiments/2026-12-01-conspicuity). A lesion too crowded to be
    measured has no conspicuity and is kept. `records` carry their export
    folder (load_split's records)."""
    if not any("conspicuity" in l for rec in records for l in rec["lesions"]):
        folders = sorted({rec["export"] for rec in records})
        raise SystemExit(f"data: no lesion of {folders} has a conspicuity in truth.jsonl: "
                         "the exports predate its measurement; delete them and re-run onnx/train.sh (or sonoflow phantom export)")
    out = {}
    for i, rec in enumerate(records):
        values = [l["label"] for l in rec["lesions"] if l.get("conspicuity") is not None and l["conspicuity"] < below]
        if not values:
            continue
        labels = np.asarray(Image.open(pathlib.Path(rec["export"]) / rec["labels"]))
        plan = ResizePlan(labels.shape[1], labels.shape[0], rec["region"])
        mask = np.nan_to_num(plan.sample(np.isin(labels, values).astype(np.float32)), nan=0.0) > 0.01
        for _ in range(grow):
            grown = mask.copy()
            grown[1:] |= mask[:-1]
            grown[:-1] |= mask[1:]
            grown[:, 1:] |= mask[:, :-1]
            grown[:, :-1] |= mask[:, 1:]
            mask = grown
        out[i] = mask.astype(np.uint8) * 255
    return out
