"""Exports a trained umind-nano checkpoint to the sonoflow model contract:
five ONNX graphs (opset 17, dynamic batch/tasks/sequence, KV cache on the
decoder), the tokenizer, the default kernels and sonoflow-model.toml, and
train-log.json: the checkpoint's stages, those of the export whose default
kernels it reuses (--default-kernels), and its own (see provenance.py).

    cd onnx && python -m umind.export --checkpoint ../out/umind-train/checkpoint.pt --data ../out/umind-data --out ../out/umind-base
"""
import argparse
import hashlib
import json
import pathlib
import shutil
import time

import numpy as np
import onnxruntime as ort
import torch

from . import data, provenance, report
from .model import D_MODEL, FEATURES, HEADS, IMAGE_TOKENS, KERNEL_SIZE, LAYERS, MAX_POSITIONS, UMindNano
from .train import CACHE, TRAIN_SPLITS, batch_tensors, encode_reports

OPSET = 17
HEAD_DIM = D_MODEL // HEADS


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def export(module, args, path, inputs, outputs, dynamic_axes):
    torch.onnx.export(
        module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=dynamic_axes,
        opset_version=OPSET, dynamo=False, do_constant_folding=True,
    )


def past_names():
    names = []
    for i in range(LAYERS):
        names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
    return names


def present_names():
    return [n.replace("past_key_values", "present") for n in past_names()]


def export_graphs(model, out):
    b = {0: "batch"}
    export(model.encoder, (torch.zeros(2, 1, data.SIZE, data.SIZE),), out / "vision_encoder.onnx",
           ["pixel_values"], ["image_features", "image_embeds"], {"pixel_values": b, "image_features": b, "image_embeds": b})
    bt = {0: "batch", 1: "tasks"}
    export(model.mask_decoder, (torch.zeros(2, FEATURES, 64, 64), torch.zeros(2, 3, KERNEL_SIZE)), out / "mask_decoder.onnx",
           ["image_features", "kernels"], ["mask_logits", "scores"],
           {"image_features": b, "kernels": bt, "mask_logits": bt, "scores": bt})
    export(model.projector, (torch.zeros(2, 3, D_MODEL),), out / "kernel_projector.onnx",
           ["task_hidden_states"], ["kernels"], {"task_hidden_states": bt, "kernels": bt})
    bs = {0: "batch", 1: "sequence"}
    export(model.embed, (torch.zeros(2, 5, dtype=torch.int64),), out / "embed_tokens.onnx",
           ["input_ids"], ["inputs_embeds"], {"input_ids": bs, "inputs_embeds": bs})
    past = [torch.zeros(2, HEADS, 3, HEAD_DIM) for _ in range(2 * LAYERS)]
    axes = {"inputs_embeds": bs, "attention_mask": {0: "batch", 1: "total_sequence"}, "position_ids": bs,
            "logits": bs, "hidden_states": bs}
    axes.update({n: {0: "batch", 2: "past_sequence"} for n in past_names()})
    axes.update({n: {0: "batch", 2: "total_sequence"} for n in present_names()})
    export(model.decoder, (torch.zeros(2, 4, D_MODEL), torch.ones(2, 7, dtype=torch.int64), torch.arange(3, 7).expand(2, -1), *past),
           out / "decoder.onnx", ["inputs_embeds", "attention_mask", "position_ids", *past_names()],
           ["logits", "hidden_states", *present_names()], axes)


@torch.no_grad()
def default_kernels(model, tokenizer, data_root, frames=512, seed=3):
    """The projector's kernels for the standard prompt, averaged over training frames."""
    images, masks, _, reports, _ = data.load_split([data_root / s for s in TRAIN_SPLITS], data_root / "cache" / f"train-{CACHE}")
    index = np.random.default_rng(seed).choice(len(images), min(frames, len(images)), replace=False)
    ids, positions = encode_reports(tokenizer, [reports[i] for i in index])
    total = torch.zeros(len(report.TASKS), KERNEL_SIZE, dtype=torch.float64)
    for start in range(0, len(index), 32):
        x, _ = batch_tensors(images, masks, index[start : start + 32], None)
        _, _, _, kernels, _, _ = model(x, torch.from_numpy(ids[start : start + 32]), torch.from_numpy(positions[start : start + 32]))
        total += kernels.double().sum(0)
    return (total / len(index)).float().numpy()


@torch.no_grad()
def check_against_torch(model, out, vocab):
    """The ONNX graphs give the PyTorch model's numbers, at shapes other than the traced ones."""
    rng = np.random.default_rng(0)
    sess = lambda name: ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((1, 1, data.SIZE, data.SIZE)).astype(np.float32)
    f, e = sess("vision_encoder.onnx").run(None, {"pixel_values": x})
    tf, te = model.encoder(torch.from_numpy(x))
    assert np.allclose(f, tf.numpy(), atol=1e-3) and np.allclose(e, te.numpy(), atol=1e-3), "vision_encoder differs"
    k = rng.standard_normal((1, 2, KERNEL_SIZE)).astype(np.float32) * 0.1
    m, s = sess("mask_decoder.onnx").run(None, {"image_features": f, "kernels": k})
    tm, ts = model.mask_decoder(tf, torch.from_numpy(k))
    assert np.allclose(m, tm.numpy(), atol=1e-3), "mask_decoder differs"
    # Decoder: a prefill of 9 then one step, against one pass of 10.
    ids = rng.integers(0, vocab, (1, 10))
    emb = sess("embed_tokens.onnx").run(None, {"input_ids": ids})[0]
    dec = sess("decoder.onnx")
    empty = {n: np.zeros((1, HEADS, 0, HEAD_DIM), np.float32) for n in past_names()}
    full = dec.run(None, {"inputs_embeds": emb, "attention_mask": np.ones((1, 10), np.int64), "position_ids": np.arange(10)[None], **empty})
    first = dec.run(None, {"inputs_embeds": emb[:, :9], "attention_mask": np.ones((1, 9), np.int64), "position_ids": np.arange(9)[None], **empty})
    past = dict(zip(past_names(), first[2:]))
    step = dec.run(None, {"inputs_embeds": emb[:, 9:], "attention_mask": np.ones((1, 10), np.int64), "position_ids": np.array([[9]]), **past})
    assert np.allclose(full[0][:, 9], step[0][:, 0], atol=1e-3), "KV-cache step differs from a full pass"
    tl = model.decoder(torch.from_numpy(emb), torch.ones(1, 10, dtype=torch.int64), torch.arange(10)[None], *model.empty_past(1))[0]
    assert np.allclose(full[0], tl.numpy(), atol=1e-3), "decoder differs"


def tensor(name, dtype, shape):
    dims = ", ".join(f'"{d}"' if isinstance(d, str) else str(d) for d in shape)
    return f'{{ name = "{name}", dtype = "{dtype}", shape = [{dims}] }}'


def graph_section(role, file, out, inputs, outputs, max_positions=None):
    lines = [f"[graphs.{role}]", f'file = "{file}"', f'sha256 = "{sha256(out / file)}"']
    if max_positions is not None:  # the decoder's position table: generation never goes past it
        lines.append(f"max_positions = {max_positions}")
    lines.append("inputs = [")
    lines += [f"  {tensor(*t)}," for t in inputs]
    lines += ["]", "outputs = ["]
    lines += [f"  {tensor(*t)}," for t in outputs]
    lines += ["]", ""]
    return "\n".join(lines)


# The task prompts umind-nano is taught (train.py: the report; finetune.py: the class prompts).
PROMPTS = [report.PROMPT, "[SEG] cyst", "[SEG] mass", "[SEG] lesion"]


def report_section():
    """[report]: the grammar of report.py's reports, for the reasoning head."""
    keys = {key: field for key, field in report.KEYS}
    renamed = {key: field for key, field in report.KEYS if key.replace(" ", "_") != field and field not in ("class", "assessment")}
    finding = next(key for key, field in report.KEYS if field == "class")
    assessment = next(key for key, field in report.KEYS if field == "assessment")
    assert keys[finding] == "class" and keys[assessment] == "assessment"
    measurement = '  {{ key = "{}", placeholder = "{}", caliper = "{}", unit = "mm" }},'
    return "\n".join([
        "[report]",
        f"finding = {json.dumps(finding)}",
        f"assessment = {json.dumps(assessment)}",
        f"no_finding = {json.dumps(report.NO_LESION.rstrip(' .'))}",
        "attribute_keys = { " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in renamed.items()) + " }",
        "measurements = [",
        measurement.format("long axis", report.LONG, "long"),
        measurement.format("short axis", report.SHORT, "short"),
        "]",
        "",
    ])


def manifest(out, vocab, version, provenance):
    f32 = "float32"
    kv_past = [(n, f32, ["batch", HEADS, "past_sequence", HEAD_DIM]) for n in past_names()]
    kv_present = [(n, f32, ["batch", HEADS, "total_sequence", HEAD_DIM]) for n in present_names()]
    attrs = "\n".join(f"{k} = [{', '.join(json.dumps(v) for v in vals)}]" for k, vals in report.ATTRIBUTES.items())
    attrs += f"\nassessment = [{', '.join(json.dumps(a) for a in report.ASSESSMENTS)}]"
    parts = [
        "# umind-nano: sonoflow's demo vision-language model, trained on phantom data.",
        "# Written by onnx/umind/export.py (onnx/train.sh); regenerate rather than edit.",
        "format = 1",
        'name = "umind-nano"',
        f'version = "{version}"',
        'description = "UMind-VL-style ultrasound VLM (CNN encoder, 4-layer LM, dynamic-kernel mask decoder), 256x256 gray, trained on the sonoflow phantom. Not a clinical device."',
        f"labels = [{', '.join(json.dumps(c) for c in report.CLASSES)}]",
        f"prompts = [{', '.join(json.dumps(p) for p in PROMPTS)}]",
        "",
        "[attributes]",
        attrs,
        "",
        report_section(),
        "[license]",
        'weights = "Apache-2.0"',
        f"provenance = {json.dumps(provenance)}",
        "",
        graph_section("vision_encoder", "vision_encoder.onnx", out,
                      [("pixel_values", f32, ["batch", 1, data.SIZE, data.SIZE])],
                      [("image_features", f32, ["batch", FEATURES, 64, 64]), ("image_embeds", f32, ["batch", IMAGE_TOKENS, D_MODEL])]),
        graph_section("mask_decoder", "mask_decoder.onnx", out,
                      [("image_features", f32, ["batch", FEATURES, 64, 64]), ("kernels", f32, ["batch", "tasks", KERNEL_SIZE])],
                      [("mask_logits", f32, ["batch", "tasks", 64, 64]), ("scores", f32, ["batch", "tasks"])]),
        graph_section("kernel_projector", "kernel_projector.onnx", out,
                      [("task_hidden_states", f32, ["batch", "tasks", D_MODEL])], [("kernels", f32, ["batch", "tasks", KERNEL_SIZE])]),
        graph_section("embed_tokens", "embed_tokens.onnx", out,
                      [("input_ids", "int64", ["batch", "sequence"])], [("inputs_embeds", f32, ["batch", "sequence", D_MODEL])]),
        graph_section("decoder", "decoder.onnx", out,
                      [("inputs_embeds", f32, ["batch", "sequence", D_MODEL]), ("attention_mask", "int64", ["batch", "total_sequence"]),
                       ("position_ids", "int64", ["batch", "sequence"]), *kv_past],
                      [("logits", f32, ["batch", "sequence", vocab]), ("hidden_states", f32, ["batch", "sequence", D_MODEL]), *kv_present],
                      max_positions=MAX_POSITIONS),
        "[preprocess]",
        'input = "pixel_values"',
        f"width = {data.SIZE}",
        f"height = {data.SIZE}",
        "channels = 1",
        'layout = "nchw"',
        f"mean = [{data.MEAN}]",
        f"std = [{data.STD}]",
        'crop = "image-region"',
        'resize = "letterbox"',
        f"pad_value = {data.PAD_VALUE}",
        "",
        "[decoder_io]",
        'features = "image_features"',
        'kernels = "kernels"',
        'mask_logits = "mask_logits"',
        'scores = "scores"',
        "",
        '[[tasks]]\ntoken = "[SEG]"\ndrives = "segmentation"\ntarget = "lesion"\n',
        '[[tasks]]\ntoken = "[DET]"\ndrives = "detection"\ntarget = "lesion"\n',
        '[[tasks]]\ntoken = "[MEAS]"\ndrives = "keypoints"\ntarget = "lesion"\n',
        '[[tasks]]\ntoken = "[DIAG]"\ndrives = "diagnosis"\ntarget = "lesion"\n',
        "[default_kernels]",
        'file = "default_kernels.f32"',
        f'sha256 = "{sha256(out / "default_kernels.f32")}"',
        f"tokens = [{', '.join(json.dumps(t) for t in report.TASKS)}]",
        f"size = {KERNEL_SIZE}",
        "",
        "[tokenizer]",
        'file = "tokenizer.json"',
        f'sha256 = "{sha256(out / "tokenizer.json")}"',
        "",
    ]
    (out / "sonoflow-model.toml").write_text("\n".join(parts))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="out/umind-train/checkpoint.pt")
    ap.add_argument("--data", default="out/umind-data")
    ap.add_argument("--out", default="onnx/umind-nano")
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--default-kernels", help="reuse this default_kernels.f32 (a fine-tune that froze the encoder and mask decoder keeps the per-frame path as it was)")
    args = ap.parse_args(argv)
    started = time.time()
    keep_kernels = pathlib.Path(args.default_kernels).read_bytes() if args.default_kernels else None
    ckpt = torch.load(args.checkpoint, map_location="cpu")
    vocab = ckpt["vocab"]
    model = UMindNano(vocab)
    model.load_state_dict(ckpt["model"])
    model.eval()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(pathlib.Path(args.checkpoint).parent / "tokenizer.json", out / "tokenizer.json")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    export_graphs(model, out)
    check_against_torch(model, out, vocab)
    if keep_kernels is not None:
        (out / "default_kernels.f32").write_bytes(keep_kernels)
    else:
        default_kernels(model, tokenizer, pathlib.Path(args.data)).astype("<f4").tofile(out / "default_kernels.f32")
    steps = ckpt["step"]
    provenance_text = (f"Trained from scratch by onnx/train.sh (seed {ckpt['args']['seed']}, {steps} steps of batch {ckpt['args']['batch']}) "
                  "on sonoflow phantom exports (seeds 101, 121, 122 and 111); no external data or pretrained weights.")
    if "finetune" in ckpt:
        f = ckpt["finetune"]
        provenance_text += (f" Then taught to follow task prompts ([DIAG], [SEG] cyst, [SEG] mass, [SEG] lesion) by onnx/umind/finetune.py "
                       f"({f['steps']} steps of batch {f['batch']}, seed {f['seed']}; vision encoder and mask decoder frozen).")
    manifest(out, vocab, args.version, provenance_text)
    logs = [provenance.read_log(pathlib.Path(args.checkpoint).parent / "train-log.json")]
    if args.default_kernels and (pathlib.Path(args.default_kernels).parent / "train-log.json").exists():
        logs.append(provenance.read_log(pathlib.Path(args.default_kernels).parent / "train-log.json"))
    this = provenance.stage("export", "export", argv, args, started, checkpoint=args.checkpoint, out=args.out,
                            default_kernels=args.default_kernels)
    provenance.write_log(out / "train-log.json", provenance.merge(*logs, {"stages": [this]}))
    for f in sorted(out.iterdir()):
        print(f"{f.name}: {f.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
