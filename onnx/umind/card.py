"""Writes docs/model-card.md from what the training and the evaluation
recorded, so that no figure in it can drift from them:

- onnx/umind-nano/metrics.json (umind.evaluate): every accuracy figure and
  timing, and the held-out splits;
- onnx/umind-nano/train-log.json (umind.train, umind.finetune, umind.export;
  see provenance.py): the stages that made the weights, their commands,
  folders, arguments and seconds, and the training splits;
- the model directory itself: parameters and opsets of the shipped graphs
  (read from the ONNX files, as `sonoflow model info` counts them), file
  sizes, the tokenizer's vocabulary and the manifest's preprocessing;
- onnx/requirements-train.txt (the PyTorch pin) and onnx/train.sh (every
  folder a recorded stage names must be one train.sh uses; where one is not,
  the card says so).

A figure missing from these files is reported as missing, never filled in.
Plain Python 3.11 (no torch, no numpy). onnx/train.sh runs it last;
`--check` exits 1 when the card on disk differs from what it would write
(scripts/test.sh runs that).

    cd onnx && python3 -m umind.card [--check]
"""
import argparse
import difflib
import json
import pathlib
import re
import sys
import textwrap
import tomllib

from . import provenance

ROOT = provenance.ROOT
MISSING = "n/a"

# The aims the card holds the model to: issue 18's "done when" on the
# phantom's held-out set (Dice, long axis, detection, each report attribute,
# false positives; untraceable numbers are the product's own rule: none).
AIMS = {
    "dice": 0.92,
    "long_axis_mae_mm": 0.5,
    "detection": 0.95,
    "attribute": 0.85,
    "fp_per_100_empty_frames": 2.0,
}
ATTRIBUTE_ORDER = ["lesion", "class", "shape", "orientation", "margin", "echo_pattern", "posterior", "calcifications", "assessment"]
ATTRIBUTE_NAMES = {"echo_pattern": "echo pattern"}
ECHO_ORDER = ["anechoic", "hypoechoic", "isoechoic", "hyperechoic", "heterogeneous", "complex_cystic_solid", "mixed"]
GRAPH_ORDER = ["vision_encoder", "embed_tokens", "decoder", "kernel_projector", "mask_decoder"]


# ---- ONNX files: a minimal protobuf reader (ModelProto.graph.initializer dims, opset_import) ----

def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {i}")
        yield field, wire, value


def onnx_facts(path):
    """(parameters, opsets) of an ONNX file: elements in all initializers
    (as sonoflow_model::onnx_file::summarize counts them) and "domain:version"."""
    buf = memoryview(pathlib.Path(path).read_bytes())
    parameters, opsets = 0, []
    for field, wire, value in _fields(buf):
        if field == 8 and wire == 2:  # opset_import
            parts = dict((f, v) for f, _, v in _fields(value))
            domain = bytes(parts.get(1, b"")).decode() or "ai.onnx"
            opsets.append(f"{domain}:{parts.get(2, 0)}")
        if field != 7 or wire != 2:  # graph
            continue
        for g, gw, tensor in _fields(value):
            if g != 5 or gw != 2:  # initializer
                continue
            dims = []
            for t, tw, v in _fields(tensor):
                if t == 1 and tw == 0:
                    dims.append(v)
                elif t == 1 and tw == 2:  # packed
                    j = 0
                    while j < len(v):
                        d, j = _varint(v, j)
                        dims.append(d)
            n = 1
            for d in dims:
                n *= max(d - (1 << 64) if d >= 1 << 63 else d, 0)
            parameters += n
    return parameters, opsets


# ---- formatting ----

def num(v, digits=3):
    return MISSING if v is None else f"{v:.{digits}f}"


def pct(v, digits=1):
    return MISSING if v is None else f"{100 * v:.{digits}f} %"


def mm(v):
    return MISSING if v is None else f"{v:.2f} mm"


def interval(summary, key, digits=3, unit=""):
    """" (0.78–0.84)": the 95 % interval `sonoflow eval` gives a figure by
    resampling scenes (`intervals_95`), or "" where it gave none."""
    ends = ((summary or {}).get("intervals_95") or {}).get(key)
    return "" if not ends else f" ({ends[0]:.{digits}f}–{ends[1]:.{digits}f}{unit})"


def ms(v):
    return MISSING if v is None else (f"{v:.1f} ms" if v >= 10 else f"{v:.2f} ms")


def minutes(seconds):
    return MISSING if seconds is None else f"{seconds / 60:.1f} minutes"


def threads(n):
    return f"{MISSING} threads" if n is None else f"{n} thread{'' if n == 1 else 's'}"


def size(n):
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def out_of(n, of):
    return MISSING if n is None or not of else f"{n} of {of}"


def wrap(text, indent=""):
    """A paragraph (or a "- " bullet) wrapped at 100 columns."""
    first = indent + ("- " if text.startswith("- ") else "")
    body = text[2:] if text.startswith("- ") else text
    return textwrap.fill(body, width=100, initial_indent=first, subsequent_indent=indent + ("  " if first.endswith("- ") else ""),
                         break_long_words=False, break_on_hyphens=False)


def mask_resolution(f):
    """The mask's resolution against the model input ("1/2", "1/4"), from the graphs."""
    features = f.shape("vision_encoder", "image_features")
    pixels = f.shape("vision_encoder", "pixel_values", outputs=False)
    try:
        return f"1/{int(pixels[2]) // int(features[2])}"
    except (TypeError, ValueError, ZeroDivisionError, IndexError):
        return MISSING


def shape_text(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---- what the files say ----

class Facts:
    def __init__(self, model_dir, train_sh, requirements):
        model_dir = pathlib.Path(model_dir)
        self.model_dir = model_dir
        self.metrics = json.loads((model_dir / "metrics.json").read_text())
        self.raw_log = json.loads((model_dir / "train-log.json").read_text())
        self.log = provenance.upgrade(self.raw_log)
        self.manifest = tomllib.loads((model_dir / "sonoflow-model.toml").read_text())
        tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
        self.vocab = len(tokenizer["model"]["vocab"])
        self.train_sh = pathlib.Path(train_sh).read_text()
        pins = dict(re.findall(r"^([A-Za-z0-9_-]+)==(\S+)", pathlib.Path(requirements).read_text(), re.M))
        self.torch = pins.get("torch")
        self.graphs = {}
        for role, graph in self.manifest["graphs"].items():
            path = model_dir / graph["file"]
            parameters, opsets = onnx_facts(path)
            self.graphs[role] = {"file": graph["file"], "bytes": path.stat().st_size, "parameters": parameters,
                                 "opsets": opsets, "inputs": graph["inputs"], "outputs": graph["outputs"]}
        skip = {"metrics.json", "train-log.json"}
        self.model_bytes = sum(f.stat().st_size for f in model_dir.iterdir() if f.is_file() and f.name not in skip)

    def stages(self, name):
        return [s for s in self.log["stages"] if s["stage"] == name]

    def shape(self, role, tensor, outputs=True):
        for t in self.graphs[role]["outputs" if outputs else "inputs"]:
            if t["name"] == tensor:
                return t["shape"]
        raise KeyError(f"{role}: no tensor {tensor}")


def notes_on_provenance(f):
    """Where the recorded stages disagree with onnx/train.sh or with each other."""
    notes = []
    used = lambda path: re.search(re.escape(path) + r"(?![\w.-])", f.train_sh) is not None
    written = set()
    unrecorded = [s["stage"] for s in f.log["stages"] if s.get("command") is None]
    if unrecorded:
        notes.append(f"The command lines of {', '.join(unrecorded)} are not recorded (a train log of format "
                     f"{f.log.get('upgraded_from', 1)}), only their arguments; nor are their start times.")
    foreign = []  # (stage, read/wrote, folder) that train.sh does not use
    for s in f.log["stages"]:
        for key in ("checkpoint", "default_kernels"):
            source = s.get(key)
            if not source:
                continue
            folder = str(pathlib.PurePosixPath(source).parent)
            if folder not in written:
                notes.append(f"The {s['stage']} stage read `{source}`, which no recorded stage wrote.")
            if not used(folder):
                foreign.append(f"the {s['stage']} stage read `{folder}`")
        if s.get("out"):
            if not used(s["out"]):
                foreign.append(f"the {s['stage']} stage wrote `{s['out']}`")
            written.add(str(pathlib.PurePosixPath(s["out"])))
    if foreign:
        notes.append("Folders on record that onnx/train.sh does not use: " + "; ".join(foreign)
                     + ". The committed weights did not come from train.sh as it stands.")
    if not f.stages("export"):
        notes.append("No export stage is recorded (export.py records itself since train-log format 2), so "
                     "neither which checkpoint the shipped graphs came from nor where the default kernels "
                     "were averaged is on record.")
    if not any(s.get("data") for s in f.log["stages"]):
        notes.append("The training data is not on record (train.py records the exports' manifests since "
                     "train-log format 2).")
    return notes


# ---- sections ----

def frame_size(split):
    """The split's frame sizes: each size its sequences drew when the record
    has them; a randomised export's base size said to be one; else the size."""
    base = f"{split.get('width', MISSING)}x{split.get('height', MISSING)}"
    if split.get("frame_sizes"):
        return ", ".join(split["frame_sizes"])
    if "--randomise" in (split.get("export") or {}).get("command", []):
        return f"{base} base, drawn per sequence"
    return base


def data_section(f):
    train = next((s for s in f.stages("train") if s.get("data")), None)
    rows = []
    for split, role in [(d, "train") for d in (train or {}).get("data", [])] + [(d, "test") for d in f.metrics.get("data", []) if isinstance(d, dict)]:
        depths = "; ".join(f"{p} {lo}–{hi}" if lo != hi else f"{p} {lo}" for p, (lo, hi) in split.get("depth_cm", {}).items())
        rows.append([
            f"`{split['split']}`",
            split.get("seed", MISSING), split.get("frames", MISSING),
            f"{split.get('sequences', MISSING)} of {' or '.join(str(n) for n in split.get('sequence_frames', [])) or MISSING}",
            " or ".join(str(n) for n in split.get("lesions_per_scene", [])) or MISSING,
            frame_size(split),
            depths or MISSING,
            "train" if role == "train" and split["split"] != "val" else ("validation" if split["split"] == "val" else "held-out evaluation"),
        ])
    if rows:
        seeds = [r[1] for r in rows]
        distinct = len(set(seeds)) == len(seeds)
        body = table(["split", "seed", "frames", "sequences (of frames)", "lesions per scene", "frame size",
                      "depth (cm) per probe", "used for"], rows)
        body += ("\n\n" + wrap("Each sequence's scene seed is derived from its split's seed, and the seeds "
                 + ("all differ, so the splits never share a scene." if distinct else "**repeat**: some splits share scenes.")))
    else:
        body = wrap("The splits are not on record: train-log.json does not list the training data (train.py "
                "records the exports' manifests since train-log format 2) and metrics.json does not list the "
                "held-out exports (evaluate.py records them since it takes its figures from `sonoflow eval`). "
                "`onnx/train.sh`'s `export_split` lines name the splits it makes.")
    pre = f.manifest["preprocess"]
    return f"""## Data

All of it comes from `sonoflow phantom export` (docs/phantom.md): B-mode frames with exact ground
truth, in sequences of one scene under probe motion; linear and convex probes alternate, the depth
preset, gain and dynamic range are drawn per sequence, and every lesion kind (simple cyst, complex
cyst, benign solid, malignant solid) comes with its BI-RADS descriptors, each drawn big enough to be
seen and echo levels clear of the thresholds that name them (docs/phantom.md, "Anatomy and lesions").

{body}

Frames are preprocessed exactly as the runtime does (`onnx/umind/data.py` mirrors
`sonoflow_inference::preprocess`): the image region's bounding box is cropped, letterboxed to
{pre['width']}x{pre['height']} with bilinear sampling, normalised with mean {pre['mean'][0]} and std {pre['std'][0]}.

The report each frame is taught describes the largest lesion in view:

```
finding : mass . shape : oval . orientation : parallel . margin : circumscribed . echo pattern : hypoechoic .
posterior features : none . calcifications : none . assessment : probably benign .
long axis : <long> mm . short axis : <short> mm . [SEG] [DET] [EOS]
```

or `no focal lesion . [SEG] [DET] [EOS]`. The vocabulary ({f.vocab} words, `tokenizer.json`, a word-level
tokenizer built with the `tokenizers` library) has **no digits**: measurements are the placeholders
`<long>` and `<short>`, filled in from the calipers at run time, so no number in a report comes from
the language model. The assessment is the phantom's simplified descriptor-to-category mapping
(`sonoflow_phantom::lexicon::LesionAttributes::assessment`), not the clinical BI-RADS process.
"""


def architecture_section(f):
    g = f.graphs
    features = f.shape("vision_encoder", "image_features")
    tokens = f.shape("vision_encoder", "image_embeds")
    pixels = f.shape("vision_encoder", "pixel_values", outputs=False)
    kernel = f.shape("kernel_projector", "kernels")[-1]
    past = [t for t in g["decoder"]["inputs"] if t["name"].startswith("past_key_values.")]
    layers, heads = len(past) // 2, past[0]["shape"][1]
    width = tokens[-1]
    what = {
        "vision_encoder": f"CNN (stride-2 stages to 1/32, residual blocks) with an FPN: {pixels[1]}x{pixels[2]}x{pixels[3]} → dense "
                          f"features {features[1]}x{features[2]}x{features[3]} ({mask_resolution(f)} resolution) and {tokens[1]} image tokens of "
                          f"width {width}: patches of the 1/16 map, and region tokens pooled (1/16, 1/8 and 1/4 features) "
                          "under a saliency map trained on the reported lesion's mask",
        "embed_tokens": "token ids → embeddings",
        "decoder": f"decoder-only transformer LM: {layers} pre-norm layers, width {width}, {heads} heads, learned "
                   "positions, KV cache; outputs `logits`, `hidden_states`, `present.*`",
        "kernel_projector": f"MLP: the hidden state of a task token → {kernel} kernel parameters",
        "mask_decoder": f"CondInst-style dynamic head: three 1x1 convolutions ({features[1] + 2}→8→8→1, ReLU) whose weights "
                        "are the kernels, over the features plus two coordinate channels; `mask_logits` "
                        f"{shape_text(f.shape('mask_decoder', 'mask_logits'))} and `scores` (sigmoid of the strongest logit)",
    }
    rows = []
    for role in GRAPH_ORDER + sorted(set(g) - set(GRAPH_ORDER)):
        if role not in g:
            continue
        p = g[role]["parameters"]
        rows.append([f"`{role}`", f"{p:,}" + (" (all weights are inputs)" if p == 0 else ""), size(g[role]["bytes"]),
                     what.get(role, "")])
    total = sum(x["parameters"] for x in g.values())
    opsets = sorted({o for x in g.values() for o in x["opsets"]})
    return f"""## Architecture

{table(["graph", "parameters", "size", "what it does"], rows)}

{total / 1e6:.2f} M parameters (initializer elements of the shipped graphs, as `sonoflow model info`
counts them), {f.model_bytes / 1e6:.1f} MB of model files in all; opsets {", ".join(opsets)}. The image tokens
prefix the language model; the prompt is `[DIAG]`; the model writes the report and then the task
tokens `[SEG]` and `[DET]`, whose hidden states become kernels: the prompt selects the target and the
image content specialises the kernels, as in UMind-VL's dynamic convolutional mask decoder.
`default_kernels.f32` holds the projector's kernels for the standard prompt averaged over training
frames (`onnx/umind/export.py`); the per-frame path uses them until the reasoning head has written a
report for a keyframe.

{finetune_paragraph(f)}

Task tokens: `[SEG]` (segmentation: lesion), `[DET]` (detection: lesion; boxes are the connected
components of its mask, their confidence the strongest probability inside), `[MEAS]` (measurement:
calipers from the `[SEG]` mask), `[DIAG]` (the report).
"""


def finetune_paragraph(f):
    runs = f.stages("finetune")
    head = ("**Task prompts.** After training, `onnx/umind/finetune.py` taught the model to follow the task in "
            "its prompt, with the vision encoder and mask decoder frozen (so the per-frame path, its default "
            "kernels and its accuracy are exactly as trained): `[DIAG]` (the report, then `[SEG] [DET]`: kernels "
            "for every lesion), `[SEG] cyst` and `[SEG] mass` (only `[SEG] [DET]`: kernels for that class only), "
            "`[SEG] lesion` (every lesion, no report).")
    if not runs:
        return wrap(head + " No fine-tune is recorded in train-log.json.")
    parts = []
    for r in runs:
        a = r.get("args", {})
        shares = (f"{pct(a['class_share'], 0)} class prompts, {pct(a['both_share'], 0)} of those on frames holding a cyst and a mass"
                  if "class_share" in a and "both_share" in a else "class-prompt shares not recorded")
        parts.append(f"{a.get('steps', MISSING)} steps at lr {a.get('lr', MISSING):g} ({shares}; seed {a.get('seed', MISSING)})")
    seconds = [r.get("seconds") for r in runs]
    total = minutes(sum(seconds)) if None not in seconds else MISSING
    text = f"{head} {len(runs)} run{'s' if len(runs) > 1 else ''}: " + "; then ".join(parts) + f", {total} in all."
    before = next((e["val_dice"] for e in runs[0].get("log", []) if e.get("step") == 0 and isinstance(e.get("val_dice"), dict)), None)
    after = next((e["val_dice"] for e in reversed(runs[-1].get("log", [])) if isinstance(e.get("val_dice"), dict)), None)
    if before and after:
        frames = runs[-1].get("val_frames")
        where = f"the {frames} validation frames" if frames else "the validation frames"
        d = lambda k: num(after.get(k))
        b = lambda k: num(before.get(k))
        text += (f" Mask Dice of `[SEG]` on {where} holding both a cyst and a mass (train-log.json): `[DIAG]` "
                 f"{d('diag')} ({b('diag')} before), `[SEG] lesion` {d('lesion')} ({b('lesion')} before), "
                 f"`[SEG] cyst` **{d('cyst')}** ({b('cyst')} before), `[SEG] mass` **{d('mass')}** ({b('mass')} before). "
                 "`tests/reasoning.rs` shows it through the runtime.")
    return wrap(text)


def augmented(args):
    """The training's augmentation beyond flips, as train.py draws it (absent
    from logs of runs before it existed, which trained without it)."""
    if not args.get("augment"):
        return ""
    return (" and, per frame, a grey-level gamma and gain (80 %), a Gaussian blur of 0.6-1.6 px (40 %) and a "
            "zoom of 0.8-1.25 with a shift of up to 6 % of the input (50 %), masks following")


def faint_text(args):
    """The mask losses' faint-lesion cut, when the training stage had one (train.py --ignore-below)."""
    z = args.get("ignore_below")
    if z is None:
        return ""
    return (f". Lesions whose conspicuity in their frame is under {z:g} (no searching observer finds them, "
            "docs/experiments/2026-12-01-conspicuity) are left out of both mask losses, grown by 2 pixels: "
            "neither lesion nor tissue")


def training_section(f):
    train = (f.stages("train") or [None])[0]
    a = (train or {}).get("args", {})
    frames = None
    if train and train.get("data"):
        frames = sum(d.get("frames") or 0 for d in train["data"] if d["split"] != "val")
    steps, batch = a.get("steps"), a.get("batch")
    epochs = f" ({steps * batch / frames:.1f} epochs of {frames} frames)" if frames and steps and batch else ""
    val = next((e["val_dice"] for e in reversed((train or {}).get("log", [])) if isinstance(e.get("val_dice"), float)), None)
    ft = [s.get("seconds") for s in f.stages("finetune")]
    ex = [s.get("seconds") for s in f.stages("export")]
    made = [d["export"]["seconds"] for s in f.stages("train") for d in s.get("data", []) if "export" in d]
    times = [f"Training time: **{minutes((train or {}).get('seconds'))}** on {threads(a.get('threads'))}"
             + (f" in {len(train['segments'])} runs that stopped and went on (train.py --resume)" if (train or {}).get("segments") else "")]
    if ft:
        times.append(f"fine-tuning {minutes(sum(ft)) if None not in ft else MISSING}")
    if ex:
        times.append(f"exports {minutes(sum(ex)) if None not in ex else MISSING}")
    if made:
        times.append(f"phantom exports {minutes(sum(made))} when they were made")
    evaluation = f.metrics.get("seconds")
    if evaluation is not None:
        times.append(f"held-out evaluation {minutes(evaluation)}")
    timeline = wrap(", ".join(times) + " (train-log.json, metrics.json; other work may have shared the CPU).")
    rows = []
    for s in f.log["stages"]:
        args = s.get("args", {})
        command = s.get("command") or ("recorded arguments: `" + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.items()) + "`")
        if s.get("command"):
            command = f"`{command}`" + (f" (in `{s['cwd']}`)" if s.get("cwd") else "")
        reads = ", ".join(f"`{s[k]}`" for k in ("checkpoint", "default_kernels") if s.get(k)) or f"`{args.get('data', MISSING)}`"
        rows.append([s["stage"], command, reads, f"`{s['out']}`" if s.get("out") else MISSING,
                     MISSING if s.get("seconds") is None else f"{s['seconds']:.0f}"])
    notes = notes_on_provenance(f)
    notes_text = "\n".join(wrap(f"- {n}") for n in notes) if notes else "- The recorded stages are the ones onnx/train.sh runs, each reading what the one before it wrote."
    torch = f"PyTorch {f.torch} CPU" if f.torch else "PyTorch"
    intro = wrap(
        f"`onnx/train.sh` does everything: installs the training venv (`onnx/requirements-train.txt`, {torch}; "
        "the README's two commands never install it), exports the phantom splits, trains, exports the graphs "
        "(dynamic `batch`, `tasks`, `sequence`, `past_sequence`, `total_sequence`), checks each ONNX graph "
        "against PyTorch (including a KV-cache step against a full pass), writes the manifest, fine-tunes for "
        "the task prompts, exports again, evaluates, and writes this card (`onnx/umind/card.py`). Loss: "
        "next-token cross-entropy on the report, plus BCE + soft Dice of both task masks (bilinearly upsampled "
        "to the input size) with the reasoned kernels, plus half of the same with the batch's mean kernel (so "
        "that the averaged default kernels work too), plus half a BCE of the saliency map against the reported "
        "lesion's mask, plus half the mean cross-entropy of a linear classifier per report field (class, each "
        "descriptor, assessment) over the region tokens, so that those tokens carry the reported lesion's "
        f"descriptors (the classifiers are used in training only and not exported){faint_text(a)}. Dropout in the language model. AdamW, lr {a.get('lr', MISSING):g} with warm-up and cosine "
        f"decay, batch {batch or MISSING}, random horizontal flips{augmented(a)}, {steps or MISSING} steps{epochs}, seed "
        f"{a.get('seed', MISSING)}; validation Dice at the last step {num(val)}.")
    return f"""## Training

{intro}

{timeline}

The stages on record (`onnx/umind-nano/train-log.json`), in the order they ran:

{table(["stage", "command", "reads", "writes", "seconds"], rows)}

What the record says about reproducibility:

{notes_text}
"""


def accuracy_section(f):
    m = f.metrics
    from_rust = "sources" in m
    counts = m.get("detection_counts") or {}
    measured_by = ("`sonoflow eval` (default kernels)" if from_rust else "evaluate.py in Python (reasoned kernels)")
    rows = [
        ["lesion segmentation Dice, default kernels (the per-frame path)", f"**{num(m.get('dice_default'), 4)}**{interval(m, 'dice_mean')}",
         "`sonoflow eval`" if from_rust else "evaluate.py in Python", f"≥ {AIMS['dice']:.2f}"],
        ["lesion segmentation Dice, reasoned kernels (the report's `[SEG]`)", num(m.get("dice_reasoned"), 4),
         "evaluate.py (the language model)", ""],
        ["where selection matters: Dice against the prompted class on frames holding a cyst and a mass, default kernels → `[SEG] cyst` / `[SEG] mass` kernels",
         selection_text(m.get("selection")), "evaluate.py (the language model)", "a gain > 0"],
        ["frames with Dice > 0.5", out_of(m.get("dice_gt_0_5"), m.get("dice_frames")), measured_by if "dice_gt_0_5" in m else MISSING, ""],
        ["detection precision / recall at IoU 0.5 (`[DET]` components)",
         f"**{num(m.get('detection_precision'))}{interval(m, 'detection_precision')} / {num(m.get('detection_recall'))}"
         f"{interval(m, 'detection_recall')}** ({counts.get('tp', MISSING)} hits, "
         f"{counts.get('fp', MISSING)} false, {counts.get('fn', MISSING)} missed)", measured_by, f"≥ {AIMS['detection']:.2f} each"],
        [f"long-axis error, mean absolute ({m.get('measured_lesions', MISSING)} measured lesions)", f"**{mm(m.get('long_axis_mae_mm'))}**{interval(m, 'long_axis_mae_mm', 2, ' mm')}",
         measured_by, f"≤ {AIMS['long_axis_mae_mm']} mm"],
        ["short-axis error, mean absolute", f"**{mm(m.get('short_axis_mae_mm'))}**", measured_by, ""],
        ["long-axis error, 95th percentile", mm(m.get("long_axis_p95_mm")), measured_by if "long_axis_p95_mm" in m else MISSING, ""],
        ["false-positive findings per 100 lesion-free frames",
         (f"**{num(m.get('fp_per_100_empty_frames'), 1)}**{interval(m, 'fp_per_100_empty_frames', 1)} ({m.get('false_positive_findings')} on "
          f"{m.get('lesion_free_frames')} frames; {m.get('false_positive_frames')} frames with any)"
          if "fp_per_100_empty_frames" in m else MISSING),
         measured_by if "fp_per_100_empty_frames" in m else MISSING, f"≤ {AIMS['fp_per_100_empty_frames']:g}"],
        ["reports with a number not traceable to a measurement", f"**{pct(m.get('untraceable_number_share'), 0)}** (the vocabulary has no digits)",
         "evaluate.py", "0 %"],
        ["malformed reports (task tokens missing)", out_of(m.get("malformed_reports"), m.get("frames")), "evaluate.py", ""],
    ]
    if from_rust:
        parity = m.get("parity", {})
        how = (f"The segmentation, detection, caliper and false-positive figures are the product's own: "
               f"`evaluate.py` runs `sonoflow eval` over the held-out exports (the Rust preprocessing, the shipped "
               "graphs with the default kernels, perception's post-processing, calipers and caliper smoothing, the "
               "self-check) and takes its `--json` figures. Python measures only what needs the language model: the "
               "report and the Dice of the reasoned kernels. That Dice maps the logits to frame pixels in Python; the "
               f"same mapping's Dice with the default kernels ({num(parity.get('dice_default_python'), 5)}) is held to "
               f"`sonoflow eval`'s ({num(parity.get('dice_default_rust'), 5)}) within {parity.get('tolerance', MISSING)} "
               "on the same frames, or the evaluation fails.")
    else:
        how = ("**This metrics.json predates the move to `sonoflow eval`:** `evaluate.py` then measured everything in "
               "Python with its own mirror of the post-processing, detection and calipers on the masks of the "
               "reasoned kernels (the report's `[SEG]`/`[DET]`); the Dice > 0.5 count, the 95th percentile, the "
               f"false positives per 100 lesion-free frames and the per-echo-pattern table are not in it ({MISSING} below). "
               "The next `onnx/train.sh` (or the command above) measures them through the product's own code.")
    command = m.get("command")
    if command:
        reproduce = f"```sh\ncd {m.get('cwd', 'onnx')} && {command}\n```\n\n(the command that wrote it, as recorded)"
    else:
        reproduce = ("```sh\ncd onnx && .venv/bin/python -m umind.evaluate --model umind-nano --bin ../target/release/sonoflow \\\n"
                     "    --data ../out/umind-data/test ../out/umind-data/test-empty\n```\n\n(the command as it stands; "
                     "this metrics.json does not record the one that wrote it)")
    intro = (wrap(f"Every figure below is `onnx/umind-nano/metrics.json`, over {m.get('frames', MISSING)} held-out "
                  "frames. Reproduce, after `onnx/train.sh` made the data and `cargo build --release -p sonoflow` "
                  "the binary (and `source scripts/env.sh`), with") + "\n\n" + reproduce)
    scenes = (m.get("intervals_95") or {}).get("scenes")
    if scenes:
        intro += "\n\n" + wrap(
            f"In brackets after a figure: its 95 % interval, which `sonoflow eval` draws by resampling the {scenes} "
            f"scenes of these frames ({m['intervals_95'].get('draws', MISSING)} draws; the frames of one probe sweep "
            "are not independent, so the scene is the unit); a figure resting on fewer than 10 scenes gets none. "
            "These intervals say how far a figure moves from one set of scenes to another; whether a change of "
            "model is real is a paired question, which `sonoflow eval --baseline` answers on the same scenes "
            "(docs/experiments/2026-12-01-intervals).")
    attr_table = attribute_table(m.get("attribute_accuracy", {}))
    return f"""## Accuracy on held-out phantom sequences

{intro}

{wrap(how)}

{table(["metric", "figure", "measured by", "aim"], rows)}

{echo_section(f)}

{size_section(f)}

{conspicuity_section(f)}

{stress_section(f)}

{visible_section(f)}

Attribute accuracy of the generated report, parsed back ({m.get('frames', MISSING)} frames; `lesion` is "a lesion /
no focal lesion" on every frame, the others on frames with a lesion):

{attr_table}

{findings_bullets(f)}

{timing_paragraph(f)}
"""


def echo_section(f):
    m = f.metrics
    groups = m.get("by_echo_pattern")
    if not groups:
        return wrap("Per echo pattern: not in this metrics.json (evaluate.py writes `by_echo_pattern` from "
                    "`sonoflow eval` since it took its figures from there).")
    order = [p for p in ECHO_ORDER if p in groups] + sorted(set(groups) - set(ECHO_ORDER))
    def row(name, g, dice, reasoned, attrs):
        return [name, g.get("frames", MISSING), num(dice) + interval(g, "dice_mean"), out_of(g.get("dice_gt_0_5"), g.get("dice_frames")),
                mm(g.get("long_axis_mae_mm")), mm(g.get("short_axis_mae_mm")), num(g.get("detection_precision")),
                num(g.get("detection_recall")), num(g.get("fp_per_100_empty_frames"), 1), num(reasoned),
                pct((attrs or {}).get("echo_pattern"))]

    rows = [row(p.replace("_", " "), groups[p], groups[p].get("dice_mean"), groups[p].get("dice_reasoned"),
                groups[p].get("attribute_accuracy")) for p in order]
    clear = (m.get("by_class") or {}).get("no_lesion")
    if clear:
        rows.append(row("no lesion", clear, None, None, None))
    rows.append(row("**all**", m, m.get("dice_default"), m.get("dice_reasoned"), m.get("attribute_accuracy")))
    return (wrap("Per echo pattern of the lesions in the frame (the pattern they share; `mixed` when they differ), "
                 "from `sonoflow eval` but for the reasoned Dice and the report's echo-pattern accuracy; "
                 f"{MISSING} where a figure does not apply (no lesion, or no lesion-free frame):") + "\n\n"
            + table(["lesions", "frames", "Dice", "Dice > 0.5", "long-axis MAE", "short-axis MAE", "det P", "det R",
                     "false positives per 100 lesion-free frames", "reasoned Dice", "echo pattern in the report"], rows))


def band_section(f, key, field, header, intro):
    """Detection recall per band of `key` (`recall_by_size`, `recall_by_conspicuity`), held-out and each
    stress set."""
    m = f.metrics
    sets = [("held-out", m)] + list((m.get("stress_sets") or {}).items())
    bands = [b[field] for b in m.get(key) or []]
    if not bands:
        return wrap(f"{intro}: not in this metrics.json (`sonoflow eval` reports `{key}` since it counted them).")

    def cell(summary, band):
        for b in summary.get(key) or []:
            if b[field] == band:
                return f"{num(b.get('recall'))} ({b['found']}/{b['lesions']})" if b["lesions"] else MISSING
        return MISSING

    rows = [[band] + [cell(s, band) for _, s in sets] for band in bands]
    return (wrap(f"{intro}, from `sonoflow eval` (found when a box matches the lesion at IoU 0.5; found/lesions "
                 "in brackets):") + "\n\n"
            + table([header] + [name for name, _ in sets], rows))


def size_section(f):
    return band_section(f, "recall_by_size", "long_axis", "lesion long axis",
                        "Detection recall by the lesion's true long axis")


def conspicuity_section(f):
    return band_section(f, "recall_by_conspicuity", "conspicuity", "lesion conspicuity",
                        "Detection recall by the lesion's conspicuity, how far it stands out from the tissue around "
                        "it in the frame's pixels (|z| of a test that knows its shape and place, "
                        "`crates/phantom/src/conspicuity.rs`; under 2 it is not in the image, under about 4 a "
                        "searching observer misses it at a few false findings per 100 frames)")


def selection_text(sel):
    if not sel or not sel.get("frames"):
        return MISSING
    return (f"{num(sel.get('dice_default'))} → **{num(sel.get('dice_prompted'))}** "
            f"(gain {sel.get('gain', 0):+.3f}, {sel['frames']} frames, both prompts)")


def stress_section(f):
    sets = f.metrics.get("stress_sets")
    if not sets:
        return wrap("Stress sets (a look or a contrast band never trained on): not in this metrics.json "
                    "(`evaluate.py --stress NAME=DIR` writes them).")
    rows = []
    for name, s in sets.items():
        groups = s.get("by_echo_pattern") or {}
        per_pattern = ", ".join(f"{p.replace('_', ' ')} {num(g.get('dice_mean'))}{interval(g, 'dice_mean')} "
                                f"[{g.get('frames', MISSING)}]" for p, g in sorted(groups.items()))
        rows.append([name, s.get("frames", MISSING), f"**{num(s.get('dice_default'))}**{interval(s, 'dice_mean')}",
                     out_of(s.get("dice_gt_0_5"), s.get("dice_frames")), mm(s.get("long_axis_mae_mm")),
                     f"{num(s.get('detection_precision'))} / {num(s.get('detection_recall'))}",
                     num(s.get("fp_per_100_empty_frames"), 1), per_pattern or MISSING])
    return (wrap("Stress sets: randomised phantom exports with settings the training never used, scored by "
                 "`sonoflow eval` alone (default kernels); Dice per echo pattern with its 95 % interval in brackets "
                 "where the pattern has 10 scenes or more, and its frame count in square brackets:") + "\n\n"
            + table(["set", "frames", "Dice", "Dice > 0.5", "long-axis MAE", "det P / R",
                     "false positives per 100 lesion-free frames", "Dice per echo pattern (95 % interval) [frames]"], rows))


def visible_section(f):
    """The held-out and stress figures with the lesions no searcher could find counted neither way."""
    m = f.metrics
    sets = [("held-out", m.get("visible"))] + [(name, s.get("visible")) for name, s in (m.get("stress_sets") or {}).items()]
    sets = [(name, v) for name, v in sets if v]
    if not sets:
        return wrap("On the lesions a searcher could find (lesions under conspicuity 4 counted neither way): not in "
                    "this metrics.json (evaluate.py writes `visible` since `sonoflow eval --ignore-faint-below` exists).")
    rows = []
    for name, v in sets:
        groups = v.get("by_echo_pattern") or {}
        per_pattern = ", ".join(f"{p.replace('_', ' ')} {num(g.get('dice_mean'))}" for p, g in sorted(groups.items()))
        rows.append([name, v.get("faint_lesions_ignored", MISSING), f"**{num(v.get('dice_default'))}**{interval(v, 'dice_mean')}",
                     f"{num(v.get('detection_precision'))} / {num(v.get('detection_recall'))}{interval(v, 'detection_recall')}",
                     mm(v.get("long_axis_mae_mm")), num(v.get("fp_per_100_empty_frames"), 1), per_pattern or MISSING])
    cut = sets[0][1].get("ignore_faint_below")
    cut = MISSING if cut is None else f"{cut:g}"
    return (wrap(f"The same frames with each lesion under conspicuity {cut} counted neither as found nor as missed "
                 "(`sonoflow eval --ignore-faint-below`: a box matching one at IoU 0.5 is no false positive, its pixels are out of "
                 "Dice; the band tables above still count them). No searching observer finds such a lesion in its "
                 "frame (docs/experiments/2026-12-01-conspicuity), so these are the figures on the lesions the "
                 "frames show; the figures above, on every lesion, stay the ones the aims are read against:") + "\n\n"
            + table(["set", "lesions counted neither way", "Dice", "det P / R", "long-axis MAE",
                     "false positives per 100 lesion-free frames", "Dice per echo pattern"], rows)
            + visible_report(sets[0][1], cut))


def visible_report(v, cut):
    """The report's attribute accuracy on the held-out frames whose described
    lesion a searcher could find (metrics.json visible.report), or nothing
    where evaluate.py did not write it."""
    report = v.get("report") or {}
    attrs = report.get("attribute_accuracy") or {}
    if not attrs:
        return ""
    return ("\n\n" + wrap(f"The report's attributes on the {report.get('frames', MISSING)} held-out frames that are "
                          f"lesion-free or whose largest lesion (the one the report describes) has a conspicuity of {cut} "
                          "or more:") + "\n\n"
            + attribute_table(attrs))


def attribute_table(attrs):
    """One row of attribute accuracies ({field: share}), in ATTRIBUTE_ORDER and then any others."""
    keys = [k for k in ATTRIBUTE_ORDER if k in attrs] + sorted(set(attrs) - set(ATTRIBUTE_ORDER))
    return table([ATTRIBUTE_NAMES.get(k, k) for k in keys], [[pct(attrs[k]) for k in keys]])


def findings_bullets(f):
    m = f.metrics
    bullets = []
    d, r = m.get("dice_default"), m.get("dice_reasoned")
    if d is not None and r is not None:
        meets = "meets" if d >= AIMS["dice"] else f"misses the {AIMS['dice']:.2f}"
        if r - d > 0.005:
            bullets.append(f"**Dice {meets} aim; the reasoned kernels segment better than the defaults** "
                           f"({r:.4f} against {d:.4f}).")
        else:
            bullets.append(
                f"**Dice {meets}{' the' if meets == 'meets' else ''} aim; the reasoned kernels are not better than the defaults** "
                f"({r:.4f} against {d:.4f}). The training loss that makes the averaged default kernels usable (half "
                "the mask loss is taken with the batch's mean kernel) pushes the image-specific information into "
                "the dense features, and with one target (lesion) there is nothing for the prompt to select "
                "between; the kernels' image-specific part then adds little. A model with several targets, or "
                "trained without that loss term, would show the difference UMind-VL reports, at the cost of worse "
                "defaults before the first keyframe. Here the per-frame path loses nothing by waiting for the "
                "reasoning head.")
    long = m.get("long_axis_mae_mm")
    if long is not None:
        verdict = "misses" if long > AIMS["long_axis_mae_mm"] else "meets"
        text = f"**The long-axis error ({long:.2f} mm) {verdict} the {AIMS['long_axis_mae_mm']} mm aim.**"
        if verdict == "misses":
            text += (" The mean is carried by spiculated and angular malignant lesions, whose long axis on the "
                     "ground truth runs from spike tip to spike tip and which the "
                     f"{mask_resolution(f)}-resolution mask rounds off, by deep convex frames where a mask cell "
                     "approaches a millimetre, and by the lesions the model segments poorly (the echo patterns "
                     "with the lowest Dice above).")
        bullets.append(text)
    attrs = m.get("attribute_accuracy", {})
    low = [ATTRIBUTE_NAMES.get(k, k) for k in ATTRIBUTE_ORDER if k in attrs and attrs[k] < AIMS["attribute"]]
    train = (f.stages("train") or [{}])[0]
    if low:
        bullets.append(
            f"**Attribute accuracy misses the {pct(AIMS['attribute'], 0)} aim for {', '.join(low)}.** The grid tokens plus "
            "the region tokens pooled under a learned saliency map of the reported lesion raised shape and "
            "orientation accuracy over a first version without them, but the fine distinctions (microlobulated "
            "against circumscribed margins, iso- against hypoechoic, a complex cyst's small solid nodule, which "
            "decides cyst against mass) need texture detail that the coarse and pooled tokens of this "
            f"{sum(x['parameters'] for x in f.graphs.values()) / 1e6:.0f}-million-parameter model, trained for "
            f"{minutes(train.get('seconds'))} on {threads(train.get('args', {}).get('threads'))}, do not carry. "
            "The assessment follows from the descriptors, so it inherits their errors. More training, "
            "higher-resolution region tokens or a crop of the lesion at full resolution are the next steps.")
    fp = m.get("fp_per_100_empty_frames")
    if fp is not None:
        bullets.append(f"**False positives: {fp:.1f} findings per 100 lesion-free frames** "
                       f"({'within' if fp <= AIMS['fp_per_100_empty_frames'] else 'over'} the "
                       f"{AIMS['fp_per_100_empty_frames']:g} of issue 18). Findings under 3 mm² on a calibrated frame "
                       "(smaller than a 2 mm circle) are not shown (`[perception] min_finding_area_mm2`, chosen on "
                       "the validation split, not on these frames).")
        for name, st in (m.get("stress_sets") or {}).items():
            sfp = st.get("fp_per_100_empty_frames")
            if sfp is not None and sfp > AIMS["fp_per_100_empty_frames"]:
                bullets[-1] += (f" On the stress set \"{name}\" they are **{sfp:.1f} per 100** "
                                f"({st.get('false_positive_findings', MISSING)} on {st.get('lesion_free_frames', MISSING)} "
                                "lesion-free frames), over the aim on a look the training never used.")
    if not bullets:
        return ""
    return "What these say, honestly:\n\n" + "\n".join(wrap(f"- {b}") for b in bullets)


def timing_paragraph(f):
    m = f.metrics
    py = m.get("python", {})
    enc, dec, rep = m.get("encoder_ms") or {}, m.get("decoder_ms") or {}, m.get("report_ms") or {}
    runtime = f"ONNX Runtime {py['onnxruntime']} CPU, " if py.get("onnxruntime") else ""
    threads = py.get("threads")
    text = (f"Timing of the evaluation (metrics.json; the machine it ran on and its load are not recorded). "
            f"The Python loop of `evaluate.py` ({runtime}{f'{threads} threads' if threads else 'threads not recorded'}): "
            f"encoder p50 {ms(enc.get('p50'))} (p99 {ms(enc.get('p99'))}), mask decoder p50 {ms(dec.get('p50'))} "
            f"(p99 {ms(dec.get('p99'))}), one report (image tokens + prompt, greedy with the KV cache) p50 "
            f"**{ms(rep.get('p50'))}** (p99 {ms(rep.get('p99'))}).")
    pipe = m.get("pipeline")
    if pipe:
        p = lambda k: pipe.get(k) or {}
        text += (f" Through the Rust pipeline (`sonoflow eval`, the model's default threads): model path p50 "
                 f"{ms(p('model_ms').get('p50'))} (p99 {ms(p('model_ms').get('p99'))}): preprocessing "
                 f"{ms(p('preprocess_ms').get('p50'))}, encoder {ms(p('encoder_ms').get('p50'))}, decoder "
                 f"{ms(p('decoder_ms').get('p50'))}; post-processing {ms(p('postprocess_ms').get('p50'))}; "
                 f"{num(pipe.get('frames_per_s'), 1)} images/s.")
    else:
        text += (" This metrics.json has no Rust pipeline timings (docs/performance.md measures the pipeline; "
                 "`evaluate.py` records `sonoflow eval`'s since it runs it).")
    return wrap(text)


def render(f):
    version = f.manifest.get("version", MISSING)
    return f"""# Model card: umind-nano {version}

<!-- Written by onnx/umind/card.py from onnx/umind-nano/metrics.json, train-log.json and the model
files; edit card.py, not this page (scripts/test.sh checks that they agree). -->

sonoflow's demo model, in `onnx/umind-nano/` (the model of `pipelines/default.toml`). A small
unified ultrasound vision-language model in the architecture UMind-VL describes, trained from
scratch on sonoflow's own phantom. **It is not a clinical device**: it has seen only simulated
breast B-mode images, and its findings on a real patient's images mean nothing.

Every figure on this page comes from `onnx/umind-nano/metrics.json` (the held-out evaluation),
`onnx/umind-nano/train-log.json` (the training run) or the shipped model files, through
`onnx/umind/card.py`, which `onnx/train.sh` runs last; "{MISSING}" marks a figure those files do not hold.

{data_section(f)}
{architecture_section(f)}
{training_section(f)}
{accuracy_section(f)}
## In the product

`tests/umind.rs` runs the shipped model through the real pipeline (`sonoflow run`, phantom source,
held-out scene seeds, linear and convex probes) and holds the live self-check (the report's
`accuracy` section) to thresholds a little under the figures above; `sonoflow eval` scores any
phantom export or labelled image folder the same way (README).

## Limits

- Phantom only: one tissue model (breast), one simulator; real probes, real speckle statistics,
  artefacts (reverberation, side lobes, needle), other organs and other machines' post-processing
  are unseen.
- The report describes only the largest lesion in view.
- Calcifications outside a mass are in the vocabulary but never in the phantom.
- Measurements come from the {mask_resolution(f)}-resolution mask (one mask cell is a fraction of a millimetre to
  about a millimetre at the depth presets), upsampled bilinearly: thin spicules and
  microlobulations are smoothed, which shortens long axes of spiculated lesions.
- No uncertainty estimate beyond the mask probabilities.

{experiments_section(ROOT / "docs" / "experiments")}"""


def experiments_section(folder):
    """The experiments tried on this model and not adopted: one line each
    from the title of docs/experiments/*/README.md, linked."""
    lines = []
    for readme in sorted(pathlib.Path(folder).glob("*/README.md")):
        title = readme.read_text().splitlines()[0].lstrip("# ").strip()
        lines.append(f"- [{title}](experiments/{readme.parent.name}/README.md)")
    if not lines:
        return ""
    return "## Experiments not adopted\n\nEach with its code (a patch), its metrics.json and what it says:\n\n" + "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write docs/model-card.md from metrics.json and train-log.json.")
    ap.add_argument("--model", default=str(ROOT / "onnx" / "umind-nano"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "model-card.md"))
    ap.add_argument("--train-sh", default=str(ROOT / "onnx" / "train.sh"))
    ap.add_argument("--requirements", default=str(ROOT / "onnx" / "requirements-train.txt"))
    ap.add_argument("--check", action="store_true", help="exit 1 if the card on disk differs from what would be written")
    args = ap.parse_args(argv)
    text = render(Facts(args.model, args.train_sh, args.requirements))
    text = re.sub(r"\n{3,}", "\n\n", text)
    out = pathlib.Path(args.out)
    if args.check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(out), "card.py", lineterm="", n=1)
            sys.stderr.write("\n".join(list(diff)[:40]) + "\n")
            sys.stderr.write(f"{out} differs from what onnx/umind/card.py writes: run `cd onnx && python3 -m umind.card`\n")
            return 1
        return 0
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
