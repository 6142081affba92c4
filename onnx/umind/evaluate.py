"""Measures a model directory on held-out phantom exports.

The segmentation, detection and caliper figures are the product's own:
`sonoflow eval` plays the exports through the Rust pipeline (preprocessing,
the shipped graphs with the model's default kernels, post-processing,
calipers, caliper smoothing, the self-check against the phantom's truth) and
this script takes its `--json` figures, overall, per class and per echo
pattern. Nothing here re-implements them.

Python keeps only what needs the language model, which the per-frame
pipeline does not run on every frame: the report each frame gets (attribute
accuracy, numbers not traceable to a measurement, malformed reports, report
time) and the Dice of the kernels the report's task tokens give (the
reasoned kernels). That Dice maps the mask decoder's logits to frame pixels
in Python (`frame_logits`, a mirror of sonoflow_perception::mask); the same
mirror's Dice with the default kernels is checked against `sonoflow eval`'s
over the same frames (`parity` in the output), and the evaluation fails if
they differ by more than PARITY_TOLERANCE.

    source scripts/env.sh && cd onnx
    .venv/bin/python -m umind.evaluate --model umind-nano --bin ../target/release/sonoflow \\
        --data ../out/umind-data/test ../out/umind-data/test-empty --out umind-nano/metrics.json

needs a built sonoflow (`cargo build --release -p sonoflow`) and the training
venv (onnxruntime, tokenizers, pillow, numpy).
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
from PIL import Image
from tokenizers import Tokenizer

from . import data, provenance, report
from .link import select, write_dataset
from .export import HEAD_DIM, past_names
from .finetune import CLASS_PROMPTS
from .model import HEADS

MAX_NEW_TOKENS = 64
THREADS = 2  # ONNX Runtime intra-op threads of the Python loop
# Largest accepted difference between the Python mirror's mean Dice (default
# kernels) and sonoflow eval's over the same frames.
PARITY_TOLERANCE = 0.002
# The echo-pattern group of frames whose lesions differ (sonoflow_perception::MIXED_ECHO).
MIXED_ECHO = "mixed"


class Model:
    def __init__(self, model_dir, threads=THREADS):
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

    def generate(self, image_embeds, prompt_text=report.PROMPT):
        """Greedy generation with the KV cache after `prompt_text` (the report
        for [DIAG]). Returns the text and the hidden states of the task tokens
        ([tasks, d] or None if not all were written)."""
        prompt_ids = np.array([self.tokenizer.encode(prompt_text).ids], np.int64)
        prompt = self.embed.run(None, {"input_ids": prompt_ids})[0]
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
    centre inside the crop; -inf elsewhere (a mirror of sonoflow_perception::mask,
    held to it by the parity check)."""
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


def dice(pred, truth):
    denom = pred.sum() + truth.sum()
    return 1.0 if denom == 0 else 2.0 * (pred & truth).sum() / denom


def echo_group(lesions):
    """The echo pattern a frame is grouped under, as sonoflow_perception::frame_echo_pattern
    groups it: the one its lesions share, "mixed" when they differ, None without a lesion."""
    patterns = {l.get("attributes", {}).get("echo_pattern") for l in lesions}
    if not lesions or patterns == {None}:
        return None
    return patterns.pop() if len(patterns) == 1 else MIXED_ECHO


def rust_eval(binary, model_dir, dataset, json_path, extra=()):
    """`sonoflow eval DATASET --model MODEL --json PATH [EXTRA...]`: its
    figures (the table it prints goes to stderr)."""
    command = [str(binary), "eval", str(dataset), "--model", str(model_dir), "--json", str(json_path), *extra]
    print("== " + " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    sys.stderr.write(done.stdout)
    if done.returncode != 0:
        raise SystemExit(f"evaluate: `{' '.join(command)}` failed (exit {done.returncode})")
    return json.loads(pathlib.Path(json_path).read_text())


def described_is_visible(lesions):
    """Whether a frame's report describes what a searcher could see: a
    lesion-free frame, or one whose largest lesion (the one the report
    describes) has a conspicuity of FAINT_BELOW or more. A lesion without a
    conspicuity counts as visible, as `sonoflow eval --ignore-faint-below`
    counts it."""
    lesion = report.described(lesions)
    if lesion is None:
        return True
    conspicuity = lesion.get("conspicuity")
    return conspicuity is None or conspicuity >= FAINT_BELOW


def language_model_figures(model, chosen):
    """What needs the language model, over the chosen frames: reasoned-kernel
    Dice, report attributes, untraceable numbers, timings; and the Python
    mirror's default-kernel Dice for the parity check."""
    stats = {k: [] for k in ("dice_default", "dice_reasoned", "encoder_ms", "decoder_ms", "report_ms")}
    groups, selection = {}, {}
    attr_hits, attr_total, untraceable, reports, malformed = {}, {}, 0, 0, 0
    visible_hits, visible_total, visible_frames = {}, {}, 0
    for k, (export_dir, rec) in enumerate(chosen):
        if k % 50 == 0:
            print(f"language model: frame {k}/{len(chosen)}", file=sys.stderr, flush=True)
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
        group = groups.setdefault(echo_group(rec["lesions"]), {"dice_reasoned": [], "hits": {}, "total": {}})
        truth = labels >= 10
        classes = {l["class"] for l in rec["lesions"]}
        if {"cyst", "mass"} <= classes:
            # Where selection matters: the prompt picks one class of two in view.
            for cls in ("cyst", "mass"):
                target = np.isin(labels, [l["label"] for l in rec["lesions"] if l["class"] == cls])
                _, hidden = model.generate(image_embeds, CLASS_PROMPTS[cls])
                prompted = default_logits if hidden is None else model.decode(features, model.reasoned_kernels(hidden))[0]
                selection.setdefault(cls, {"default": [], "prompted": []})
                selection[cls]["default"].append(dice(frame_logits(default_logits[0, 0], plan, w, h) > 0, target))
                selection[cls]["prompted"].append(dice(frame_logits(prompted[0, 0], plan, w, h) > 0, target))
        if truth.any():
            stats["dice_default"].append(dice(frame_logits(default_logits[0, 0], plan, w, h) > 0, truth))
            stats["dice_reasoned"].append(dice(frame_logits(reasoned_logits[0, 0], plan, w, h) > 0, truth))
            group["dice_reasoned"].append(stats["dice_reasoned"][-1])
        # The report, parsed back.
        reports += 1
        untraceable += bool(report.untraceable_numbers(text))
        parsed = report.parse(text)
        expected = report.parse(report.for_lesions(rec["lesions"]))
        tallies = [(attr_hits, attr_total), (group["hits"], group["total"])]
        if described_is_visible(rec["lesions"]):
            visible_frames += 1
            tallies.append((visible_hits, visible_total))
        for field, value in expected.items():
            hit = parsed.get(field) == value
            for hits, total in tallies:
                total[field] = total.get(field, 0) + 1
                hits[field] = hits.get(field, 0) + hit
    pct = lambda v, q: float(np.percentile(v, q)) if v else None
    mean = lambda v: float(np.mean(v)) if v else None
    accuracy = lambda hits, total: {k: hits[k] / total[k] for k in sorted(total)}
    return {
        "frames": reports,
        "dice_default_python": mean(stats["dice_default"]),
        "dice_reasoned": mean(stats["dice_reasoned"]),
        "attribute_accuracy": accuracy(attr_hits, attr_total),
        "visible_attributes": {"frames": visible_frames, "attribute_accuracy": accuracy(visible_hits, visible_total)},
        "untraceable_number_share": untraceable / max(1, reports),
        "malformed_reports": malformed,
        "encoder_ms": {"p50": pct(stats["encoder_ms"], 50), "p99": pct(stats["encoder_ms"], 99)},
        "decoder_ms": {"p50": pct(stats["decoder_ms"], 50), "p99": pct(stats["decoder_ms"], 99)},
        "report_ms": {"p50": pct(stats["report_ms"], 50), "p99": pct(stats["report_ms"], 99)},
        "by_echo_pattern": {
            g: {"dice_reasoned": mean(v["dice_reasoned"]), "attribute_accuracy": accuracy(v["hits"], v["total"])}
            for g, v in groups.items()
            if g is not None
        },
        "selection": selection_figures(selection),
    }


def selection_figures(selection):
    """Dice against the prompted class's mask on frames holding a cyst and a
    mass: the default kernels (every lesion) against the kernels of
    `[SEG] cyst` / `[SEG] mass`."""
    default = [d for v in selection.values() for d in v["default"]]
    prompted = [d for v in selection.values() for d in v["prompted"]]
    if not default:
        return {"frames": 0}
    return {
        "frames": len(selection.get("cyst", {"default": []})["default"]),
        "dice_default": float(np.mean(default)),
        "dice_prompted": float(np.mean(prompted)),
        "gain": float(np.mean(prompted) - np.mean(default)),
        "by_prompt": {cls: {"dice_default": float(np.mean(v["default"])), "dice_prompted": float(np.mean(v["prompted"]))}
                      for cls, v in selection.items()},
    }


# sonoflow eval's overall figures copied into metrics.json, under the same names.
RUST_KEYS = [
    "dice_frames", "dice_gt_0_5", "iou_mean", "detection_precision", "detection_recall", "detection_counts",
    "long_axis_mae_mm", "short_axis_mae_mm", "long_axis_p95_mm", "short_axis_p95_mm",
    "lesion_free_frames", "false_positive_frames", "false_positive_findings", "fp_per_100_empty_frames",
    "recall_by_size", "recall_by_conspicuity",
]


def rust_figures(overall):
    """sonoflow eval's overall figures under RUST_KEYS, and its 95 % intervals
    (None where no figure rests on enough scenes)."""
    return {**{k: overall[k] for k in RUST_KEYS}, "intervals_95": overall.get("intervals_95")}


# Lesions under this conspicuity no searching observer finds in their frame
# (docs/experiments/2026-12-01-conspicuity): the figures are also given with
# them counted neither way (sonoflow eval --ignore-faint-below).
FAINT_BELOW = 4.0


def set_figures(rust, what):
    """A set's figures from `sonoflow eval` alone (`what` names it in the
    error when no frame was scored): Dice, RUST_KEYS and per echo pattern."""
    overall = rust["overall"]
    if overall is None:
        raise SystemExit(f"evaluate: sonoflow eval scored no frame of {what}")
    return {"dice_default": overall["dice_mean"], **rust_figures(overall), "by_echo_pattern": rust.get("by_echo_pattern", {})}


def visible_figures(binary, model_dir, dataset, json_path):
    """`sonoflow eval --ignore-faint-below FAINT_BELOW`'s figures: the same
    frames with lesions under the cut counted neither as found nor as missed."""
    rust = rust_eval(binary, model_dir, dataset, json_path, ["--ignore-faint-below", str(FAINT_BELOW)])
    figures = set_figures(rust, f"{dataset} with --ignore-faint-below")
    return {"ignore_faint_below": FAINT_BELOW, "faint_lesions_ignored": rust["overall"].get("faint_lesions_ignored", 0), **figures}


def combine(rust, lm, binary, export_dirs, every, limit, command):
    """metrics.json: the Rust figures, the language model's, and where each comes from."""
    overall = rust["overall"]
    if overall is None:
        raise SystemExit("evaluate: sonoflow eval scored no frame (did the exports lose their truth.jsonl?)")
    if overall["frames"] != lm["frames"]:
        raise SystemExit(f"evaluate: sonoflow eval scored {overall['frames']} frames, Python {lm['frames']}")
    parity = {
        "dice_default_rust": overall["dice_mean"],
        "dice_default_python": lm["dice_default_python"],
        "tolerance": PARITY_TOLERANCE,
    }
    if (parity["dice_default_rust"] is None) != (parity["dice_default_python"] is None):
        raise SystemExit(f"evaluate: parity: one side scored no lesion frame: {parity}")
    if parity["dice_default_rust"] is not None:
        parity["difference"] = parity["dice_default_python"] - parity["dice_default_rust"]
        if abs(parity["difference"]) > PARITY_TOLERANCE:
            raise SystemExit(f"evaluate: the Python mask mapping no longer matches sonoflow's: {parity}")
    inference = rust["run"]["inference"]
    by_echo = {}
    for pattern, summary in rust.get("by_echo_pattern", {}).items():
        by_echo[pattern] = dict(summary, **lm["by_echo_pattern"].get(pattern, {}))
    metrics = {
        "frames": lm["frames"],
        "command": command,
        "cwd": provenance.working_folder(),
        "data": [provenance.split(d) for d in export_dirs],
        "every": every,
        "limit": limit,
        "dice_default": overall["dice_mean"],
        "dice_reasoned": lm["dice_reasoned"],
        **rust_figures(overall),
        "measured_lesions": overall["measured"],
        "attribute_accuracy": lm["attribute_accuracy"],
        "untraceable_number_share": lm["untraceable_number_share"],
        "malformed_reports": lm["malformed_reports"],
        "encoder_ms": lm["encoder_ms"],
        "decoder_ms": lm["decoder_ms"],
        "report_ms": lm["report_ms"],
        "selection": lm["selection"],
        "by_class": rust["by_class"],
        "by_echo_pattern": by_echo,
        "pipeline": {
            "frames_per_s": rust["frames_per_s"],
            "model_ms": {"p50": inference["model_ms"]["p50"], "p99": inference["model_ms"]["p99"]},
            "preprocess_ms": inference["preprocess_ms"],
            "encoder_ms": inference["encoder_ms"],
            "decoder_ms": inference["decoder_ms"],
            "postprocess_ms": inference["postprocess_ms"],
            "providers": inference["providers"],
        },
        "python": {"onnxruntime": ort.__version__, "threads": THREADS},
        "parity": parity,
        "sources": {
            "sonoflow eval": f"{binary} eval (the Rust pipeline, default kernels, no reasoning head): "
            "dice_default, dice_frames, dice_gt_0_5, iou_mean, detection_*, *_axis_*, measured_lesions, "
            "lesion_free_frames, false_positive_*, fp_per_100_empty_frames, recall_by_size, recall_by_conspicuity, by_class, by_echo_pattern "
            "(but for dice_reasoned and attribute_accuracy), pipeline",
            "python": "umind.evaluate with ONNX Runtime (the report, greedy, with the KV cache; the reasoned "
            "kernels of its [SEG] [DET] hidden states): dice_reasoned, attribute_accuracy, "
            "untraceable_number_share, malformed_reports, encoder_ms, decoder_ms, report_ms "
            "(2 intra-op threads, Python loop)",
        },
    }
    return metrics


def stress_figures(binary, model_dir, name, export_dirs, tmp):
    """A stress set (a look or contrast band never trained on), scored by
    `sonoflow eval` alone: the per-frame path's figures, overall and per
    echo pattern."""
    chosen = select(export_dirs, 1, None)
    dataset = write_dataset(chosen, pathlib.Path(tmp) / f"stress-{name}")
    rust = rust_eval(binary, model_dir, dataset, pathlib.Path(tmp) / f"stress-{name}.json")
    figures = set_figures(rust, f"stress set {name}")
    return {
        "data": [provenance.split(d) for d in export_dirs],
        "frames": rust["overall"]["frames"],
        **figures,
        "visible": visible_figures(binary, model_dir, dataset, pathlib.Path(tmp) / f"stress-{name}-visible.json"),
    }


def evaluate(model_dir, binary, export_dirs, limit=None, every=1, argv=None, stress=()):
    started = time.time()
    chosen = select(export_dirs, every, limit)
    with tempfile.TemporaryDirectory(prefix="umind-eval-") as tmp:
        dataset = write_dataset(chosen, pathlib.Path(tmp) / "frames")
        rust = rust_eval(binary, model_dir, dataset, pathlib.Path(tmp) / "eval.json")
        visible = visible_figures(binary, model_dir, dataset, pathlib.Path(tmp) / "eval-visible.json")
        stress_sets = {name: stress_figures(binary, model_dir, name, dirs, tmp) for name, dirs in stress}
    lm = language_model_figures(Model(model_dir), chosen)
    metrics = combine(rust, lm, binary, export_dirs, every, limit, provenance.command("evaluate", argv))
    metrics["visible"] = dict(visible, report=lm["visible_attributes"])
    metrics["stress_sets"] = stress_sets
    metrics["seconds"] = round(time.time() - started, 1)
    return metrics


def parse_stress(text):
    """NAME=DIR[,DIR...] -> (name, [dirs])."""
    name, sep, dirs = text.partition("=")
    if not sep or not name or not dirs:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=DIR[,DIR...], e.g. plane-wave=../out/d/stress-look")
    return name, [pathlib.Path(d) for d in dirs.split(",")]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="onnx/umind-nano")
    ap.add_argument("--bin", default="target/release/sonoflow", help="the sonoflow binary that scores the frames")
    ap.add_argument("--data", nargs="+", default=["out/umind-data/test", "out/umind-data/test-empty"])
    ap.add_argument("--every", type=int, default=1, help="use every N-th frame")
    ap.add_argument("--limit", type=int, default=None, help="at most N frames per export")
    ap.add_argument("--out", default=None, help="write the metrics JSON here")
    ap.add_argument("--stress", type=parse_stress, action="append", default=[],
                    help="NAME=DIR[,DIR...]: also score this stress set with sonoflow eval alone (repeatable)")
    args = ap.parse_args(argv)
    metrics = evaluate(args.model, args.bin, args.data, args.limit, args.every, argv, args.stress)
    text = json.dumps(metrics, indent=1)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
