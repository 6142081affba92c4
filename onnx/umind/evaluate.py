"""Measures a model directory on held-out phantom exports with ONNX Runtime
(the shipped graphs, not the PyTorch model): segmentation Dice with the
default kernels and with the kernels the reasoning head gives, detection
precision/recall at IoU 0.5, caliper errors in mm, report attribute accuracy,
numbers in reports not traceable to a measurement, and timings.

    python -m umind.evaluate --model onnx/umind-nano --data out/umind-data/test out/umind-data/test-empty
"""
import argparse
import json
import pathlib
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image
from tokenizers import Tokenizer

from . import data, report
from .export import HEAD_DIM, past_names
from .model import HEADS

MAX_NEW_TOKENS = 64
MIN_COMPONENT_PX = 30  # smaller predicted blobs are noise, not findings


class Model:
    def __init__(self, model_dir, threads=2):
        d = pathlib.Path(model_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        s = lambda f: ort.InferenceSession(str(d / f), opts, providers=["CPUExecutionProvider"])
        self.encoder, self.mask_decoder = s("vision_encoder.onnx"), s("mask_decoder.onnx")
        self.projector, self.embed, self.decoder = s("kernel_projector.onnx"), s("embed_tokens.onnx"), s("decoder.onnx")
        self.tokenizer = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.default_kernels = np.fromfile(d / "default_kernels.f32", dtype="<f4").reshape(len(report.TASKS), -1)[None]
        self.eos = self.tokenizer.token_to_id("[EOS]")
        self.task_ids = [self.tokenizer.token_to_id(t) for t in report.TASKS]

    def encode(self, pixel_values):
        return self.encoder.run(None, {"pixel_values": pixel_values})

    def decode(self, features, kernels):
        return self.mask_decoder.run(None, {"image_features": features, "kernels": kernels.astype(np.float32)})

    def generate(self, image_embeds):
        """Greedy report generation with the KV cache. Returns the text and the
        hidden states of the task tokens ([tasks, d] or None if not all were written)."""
        prompt = self.embed.run(None, {"input_ids": np.array([[self.tokenizer.token_to_id(report.PROMPT)]])})[0]
        embeds = np.concatenate([image_embeds, prompt], 1)
        past = {n: np.zeros((1, HEADS, 0, HEAD_DIM), np.float32) for n in past_names()}
        total, ids, task_hidden = 0, [], {}
        for _ in range(MAX_NEW_TOKENS):
            s = embeds.shape[1]
            out = self.decoder.run(None, {
                "inputs_embeds": embeds,
                "attention_mask": np.ones((1, total + s), np.int64),
                "position_ids": np.arange(total, total + s)[None],
                **past,
            })
            logits, hidden, presents = out[0], out[1], out[2:]
            if ids and ids[-1] in self.task_ids:
                task_hidden[ids[-1]] = hidden[0, -1]
            past = dict(zip(past_names(), presents))
            total += s
            nxt = int(logits[0, -1].argmax())
            if nxt == self.eos:
                break
            ids.append(nxt)
            embeds = self.embed.run(None, {"input_ids": np.array([[nxt]])})[0]
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        hidden = [task_hidden.get(t) for t in self.task_ids]
        return text, (np.stack(hidden) if all(h is not None for h in hidden) else None)

    def reasoned_kernels(self, task_hidden):
        return self.projector.run(None, {"task_hidden_states": task_hidden[None].astype(np.float32)})[0]


def frame_logits(logits64, plan, width, height):
    """Mask logits (64x64, model space) bilinearly sampled at every frame pixel
    centre inside the crop; -inf elsewhere (sonoflow's mapping, see ResizePlan)."""
    out = np.full((height, width), -np.inf, np.float32)
    x0, y0, cw, ch = plan.crop
    xs = np.arange(x0, x0 + cw, dtype=np.float32) + 0.5
    ys = np.arange(y0, y0 + ch, dtype=np.float32) + 0.5
    u = (xs - x0) * plan.scale + plan.pad_x  # model coordinates, corner-based
    v = (ys - y0) * plan.scale + plan.pad_y
    fu = np.clip(u / (data.SIZE / logits64.shape[1]) - 0.5, 0, logits64.shape[1] - 1)
    fv = np.clip(v / (data.SIZE / logits64.shape[0]) - 0.5, 0, logits64.shape[0] - 1)
    u0, v0 = np.floor(fu).astype(int), np.floor(fv).astype(int)
    u1, v1 = np.minimum(u0 + 1, logits64.shape[1] - 1), np.minimum(v0 + 1, logits64.shape[0] - 1)
    wu, wv = (fu - u0)[None, :], (fv - v0)[:, None]
    l = logits64
    top = l[v0][:, u0] * (1 - wu) + l[v0][:, u1] * wu
    bot = l[v1][:, u0] * (1 - wu) + l[v1][:, u1] * wu
    out[y0 : y0 + ch, x0 : x0 + cw] = top * (1 - wv) + bot * wv
    return out


def components(mask):
    """4-connected components: label image and a list of (label, pixel count)."""
    from collections import deque

    labels = np.zeros(mask.shape, np.int32)
    h, w = mask.shape
    found = []
    for y, x in zip(*np.nonzero(mask)):
        if labels[y, x]:
            continue
        n = len(found) + 1
        labels[y, x] = n
        queue, count = deque([(y, x)]), 0
        while queue:
            cy, cx = queue.popleft()
            count += 1
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = n
                    queue.append((ny, nx))
        found.append((n, count))
    return labels, found


def calipers_px(region):
    """Calipers of a boolean component mask, in pixels, as sonoflow's
    perception measures them: the long axis is the largest distance between
    pixel centres (over their convex hull), the short axis the widest spread
    of pixel centres across it within any 1-pixel slice along it; each gets
    half a pixel, since a boundary pixel's centre lies on average a quarter
    pixel inside the true edge. Returns (end_a, end_b, long_px, short_px)."""
    ys, xs = np.nonzero(region)
    centres = np.stack([xs + 0.5, ys + 0.5], 1).astype(np.float64)
    hull = convex_hull(centres)
    d = ((hull[:, None, :] - hull[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(d.argmax(), d.shape)
    a, b = hull[i], hull[j]
    length = float(np.sqrt(d[i, j]))
    if length == 0:
        return a, b, 1.0, 1.0
    u = (b - a) / length
    n = np.array([-u[1], u[0]])
    t, wv = (centres - a) @ u, (centres - a) @ n
    bins = np.minimum(np.floor(np.clip(t, 0, None)), np.floor(length)).astype(int)
    order = np.argsort(bins)
    bins, wv = bins[order], wv[order]
    cuts = np.flatnonzero(np.diff(bins)) + 1
    short = max(float(seg.max() - seg.min()) for seg in np.split(wv, cuts))
    return a, b, length + 0.5, short + 0.5


def cross(o, a, b):
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def convex_hull(points):
    pts = np.unique(points, axis=0)
    if len(pts) < 3:
        return pts
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]

    def half(ps):
        out = []
        for p in ps:
            while len(out) >= 2 and cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detections(logits):
    mask = logits > 0
    labels, comps = components(mask)
    out = []
    for n, count in comps:
        if count < MIN_COMPONENT_PX:
            continue
        ys, xs = np.nonzero(labels == n)
        out.append({"box": (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), "mask": labels == n, "area": count})
    return sorted(out, key=lambda d: -d["area"])


def dice(pred, truth):
    denom = pred.sum() + truth.sum()
    return 1.0 if denom == 0 else 2.0 * (pred & truth).sum() / denom


def evaluate(model, export_dirs, limit=None, every=1):
    stats = {k: [] for k in ("dice_default", "dice_reasoned", "long_err", "short_err", "encoder_ms", "decoder_ms", "report_ms")}
    tp = fp = fn = 0
    attr_hits, attr_total, untraceable, reports, malformed = {}, {}, 0, 0, 0
    for export_dir in export_dirs:
        export_dir = pathlib.Path(export_dir)
        records = data.read_records(export_dir)[::every][:limit]
        for k, rec in enumerate(records):
            if k % 50 == 0:
                print(f"{export_dir.name}: frame {k}/{len(records)}", file=sys.stderr, flush=True)
            frame = np.asarray(Image.open(export_dir / rec["image"]), dtype=np.float32)
            labels = np.asarray(Image.open(export_dir / rec["labels"]))
            h, w = frame.shape
            plan = data.ResizePlan(w, h, rec["region"])
            x = data.normalise(plan.sample(frame))[None, None]
            t0 = time.perf_counter()
            features, image_embeds = model.encode(x)
            t1 = time.perf_counter()
            default_logits, _ = model.decode(features, model.default_kernels)
            t2 = time.perf_counter()
            text, task_hidden = model.generate(image_embeds)
            t3 = time.perf_counter()
            stats["encoder_ms"].append((t1 - t0) * 1e3)
            stats["decoder_ms"].append((t2 - t1) * 1e3)
            stats["report_ms"].append((t3 - t2) * 1e3)
            if task_hidden is None:
                malformed += 1
                reasoned_logits = default_logits
            else:
                reasoned_logits, _ = model.decode(features, model.reasoned_kernels(task_hidden))
            truth = labels >= 10
            seg_default = frame_logits(default_logits[0, 0], plan, w, h)
            seg_reasoned = frame_logits(reasoned_logits[0, 0], plan, w, h)
            if truth.any():
                stats["dice_default"].append(dice(seg_default > 0, truth))
                stats["dice_reasoned"].append(dice(seg_reasoned > 0, truth))
            # Detection on the [DET] mask (reasoned kernels).
            dets = detections(frame_logits(reasoned_logits[0, 1], plan, w, h))
            boxes = [(l["bbox"]["x0"], l["bbox"]["y0"], l["bbox"]["x1"], l["bbox"]["y1"]) for l in rec["lesions"]]
            matched = set()
            for d in dets:
                best = max(range(len(boxes)), key=lambda i: iou(d["box"], boxes[i]), default=None)
                if best is not None and best not in matched and iou(d["box"], boxes[best]) >= 0.5:
                    matched.add(best)
                    tp += 1
                else:
                    fp += 1
            fn += len(boxes) - len(matched)
            # Calipers of the largest [SEG] component against the largest lesion.
            segs = detections(seg_reasoned)
            if rec["lesions"] and segs:
                lesion = max(rec["lesions"], key=lambda l: l["area_px"])
                lb = (lesion["bbox"]["x0"], lesion["bbox"]["y0"], lesion["bbox"]["x1"], lesion["bbox"]["y1"])
                if iou(segs[0]["box"], lb) >= 0.5:
                    _, _, long_px, short_px = calipers_px(segs[0]["mask"])
                    mm = rec["pixel_spacing"]["x_mm"]  # the phantom's pixels are square
                    stats["long_err"].append(abs(long_px * mm - lesion["long_axis"]["length_mm"]))
                    stats["short_err"].append(abs(short_px * mm - lesion["short_axis"]["length_mm"]))
            # The report, parsed back.
            reports += 1
            untraceable += bool(report.untraceable_numbers(text))
            parsed = report.parse(text)
            expected = report.parse(report.for_lesions(rec["lesions"]))
            for field, value in expected.items():
                attr_total[field] = attr_total.get(field, 0) + 1
                attr_hits[field] = attr_hits.get(field, 0) + (parsed.get(field) == value)
    pct = lambda v, q: float(np.percentile(v, q)) if v else None
    return {
        "frames": reports,
        "dice_default": float(np.mean(stats["dice_default"])),
        "dice_reasoned": float(np.mean(stats["dice_reasoned"])),
        "detection_precision": tp / max(1, tp + fp),
        "detection_recall": tp / max(1, tp + fn),
        "detection_counts": {"tp": tp, "fp": fp, "fn": fn},
        "long_axis_mae_mm": float(np.mean(stats["long_err"])),
        "short_axis_mae_mm": float(np.mean(stats["short_err"])),
        "measured_lesions": len(stats["long_err"]),
        "attribute_accuracy": {k: attr_hits[k] / attr_total[k] for k in sorted(attr_total)},
        "untraceable_number_share": untraceable / max(1, reports),
        "malformed_reports": malformed,
        "encoder_ms": {"p50": pct(stats["encoder_ms"], 50), "p99": pct(stats["encoder_ms"], 99)},
        "decoder_ms": {"p50": pct(stats["decoder_ms"], 50), "p99": pct(stats["decoder_ms"], 99)},
        "report_ms": {"p50": pct(stats["report_ms"], 50), "p99": pct(stats["report_ms"], 99)},
    }


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="onnx/umind-nano")
    ap.add_argument("--data", nargs="+", default=["out/umind-data/test", "out/umind-data/test-empty"])
    ap.add_argument("--every", type=int, default=1, help="use every N-th frame")
    ap.add_argument("--limit", type=int, default=None, help="at most N frames per export")
    ap.add_argument("--out", default=None, help="write the metrics JSON here")
    args = ap.parse_args(argv)
    metrics = evaluate(Model(args.model), args.data, args.limit, args.every)
    text = json.dumps(metrics, indent=1)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
