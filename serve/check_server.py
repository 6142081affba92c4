"""End-to-end check of a running sonoflow KServe v2 server (MLServer from
serve/run.sh, or Triton with serve/triton/) over gRPC with tritonclient.

On real frames of a phantom export (`sonoflow phantom export --frames 2
--out DIR`), it
  1. preprocesses each frame as the Rust frame path does
     (crates/inference/src/preprocess.rs: crop the image region, letterbox,
     bilinear, normalise; float32 step for step) and runs the vision encoder
     locally with onnxruntime: the image tokens;
  2. asks the server for model metadata (the contract) and runs its
     vision_encoder on the same input (tokens compared, bit for bit);
  3. runs reasoning_head on the image tokens and each task prompt, and the
     same greedy loop locally (serve/umind_head.py, in this process): token
     ids, task hidden states and kernels must match exactly;
  4. runs mask_decoder with the head's kernels, and checks that a malformed
     request is refused with INVALID_ARGUMENT;
  5. times each generation over gRPC (client-side round trip and the
     server's own figure) and prints a JSON summary (--json PATH writes it).

Exit status 0 when everything matches, 1 otherwise.

  .venv-serve/bin/python serve/check_server.py --export /tmp/x --url 127.0.0.1:8081
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

sys.path.insert(0, str(Path(__file__).resolve().parent))
import umind_head as uh  # noqa: E402


# ----------------------------------------------------------------- frames
def read_png_gray8(path: Path) -> np.ndarray:
    """An 8-bit greyscale, non-interlaced PNG (what the phantom writes)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, color, _, _, interlace = hdr
    if depth != 8 or color != 0 or interlace != 0:
        raise ValueError(f"{path}: only 8-bit grey, non-interlaced PNGs (got depth {depth}, colour {color})")
    raw = zlib.decompress(b"".join(idat))
    out = np.zeros((h, w), dtype=np.uint8)
    prev = np.zeros(w, dtype=np.int32)
    for y in range(h):
        f = raw[y * (w + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=w, offset=y * (w + 1) + 1).astype(np.int32)
        cur = np.zeros(w, dtype=np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        else:
            for x in range(w):
                a = cur[x - 1] if x else 0
                b = prev[x]
                c = prev[x - 1] if x else 0
                if f == 1:
                    p = a
                elif f == 3:
                    p = (a + b) // 2
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    return out


def _axis(model: int, start: int, length: int, scale, pad):
    f = np.float32
    lo, hi, w, padded = [], [], [], []
    for u in range(model):
        src = (f(u) + f(0.5) - pad) / scale - f(0.5)
        inside = (f(u) + f(0.5)) >= pad and (f(u) + f(0.5)) <= pad + f(length) * scale
        s = min(max(src, f(0.0)), f(length - 1))
        l0 = int(np.floor(s))
        lo.append(start + l0)
        hi.append(start + min(l0 + 1, length - 1))
        w.append(f(s - f(l0)))
        padded.append(not inside)
    return np.array(lo), np.array(hi), np.array(w, dtype=np.float32), np.array(padded)


def bounds(region: dict) -> dict:
    """The smallest box holding an image region (ImageRegion::bounds), in f32."""
    f = np.float32
    if region.get("kind", "rect") == "rect":
        return {k: f(region[k]) for k in ("x0", "y0", "x1", "y1")}
    if region["kind"] == "fan":
        ax, ay = f(region["apex"]["x"]), f(region["apex"]["y"])
        r0, r1, half = f(region["r0"]), f(region["r1"]), f(region["half_angle"])
        hw = r1 * np.sin(half, dtype=np.float32)
        return {"x0": ax - hw, "y0": ay + r0 * np.cos(half, dtype=np.float32), "x1": ax + hw, "y1": ay + r1}
    raise ValueError(f"image region of kind {region['kind']!r}")


def preprocess(frame: np.ndarray, region: dict, pre: dict) -> np.ndarray:
    """crates/inference/src/preprocess.rs for a Gray8 frame, one channel,
    crop = image-region (rect), letterbox or stretch; float32 throughout."""
    f = np.float32
    fh, fw = frame.shape
    region = bounds(region)
    x0 = int(np.floor(max(region["x0"], 0.0)))
    y0 = int(np.floor(max(region["y0"], 0.0)))
    x1 = min(max(int(np.ceil(region["x1"])), x0 + 1), fw)
    y1 = min(max(int(np.ceil(region["y1"])), y0 + 1), fh)
    cx, cy = min(x0, fw - 1), min(y0, fh - 1)
    cw, ch = x1 - cx, y1 - cy
    mw, mh = f(pre["width"]), f(pre["height"])
    if pre.get("resize", "letterbox") == "letterbox":
        s = min(mw / f(cw), mh / f(ch))
        sx = sy = f(s)
    else:
        sx, sy = mw / f(cw), mh / f(ch)
    pad_x = (mw - f(cw) * sx) / f(2.0)
    pad_y = (mh - f(ch) * sy) / f(2.0)
    xl, xh, xw, xp = _axis(pre["width"], cx, cw, sx, pad_x)
    yl, yh, yw, yp = _axis(pre["height"], cy, ch, sy, pad_y)
    mean, inv_std = f(pre["mean"][0]), f(1.0) / f(pre["std"][0])
    pad = (f(pre.get("pad_value", 0)) / f(255.0) - mean) * inv_std
    img = frame.astype(np.float32)
    wx, wy = xw[None, :], yw[:, None]
    top = img[yl][:, xl] * (f(1.0) - wx) + img[yl][:, xh] * wx
    bottom = img[yh][:, xl] * (f(1.0) - wx) + img[yh][:, xh] * wx
    out = ((top * (f(1.0) - wy) + bottom * wy) / f(255.0) - mean) * inv_std
    out[yp, :] = pad
    out[:, xp] = pad
    return out.astype(np.float32)[None, None, :, :]


def encode_prompt(vocab: dict, prompt: str) -> np.ndarray:
    words = prompt.split()
    unknown = [w for w in words if w not in vocab]
    if unknown or not words:
        raise ValueError(f"prompt {prompt!r}: words outside the vocabulary {unknown}")
    return np.array([[vocab[w] for w in words]], dtype=np.int64)


# ----------------------------------------------------------------- checks
def infer(client, model, arrays: dict, outputs=None):
    inputs = []
    for name, a in arrays.items():
        dt = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}[a.dtype]
        i = grpcclient.InferInput(name, list(a.shape), dt)
        i.set_data_from_numpy(a)
        inputs.append(i)
    req = [grpcclient.InferRequestedOutput(o) for o in outputs] if outputs else None
    return client.infer(model, inputs, outputs=req)


def compare_rust(path: Path, truth: list, summary: dict, fail) -> None:
    """The Rust head's latest report (word-level vocabulary: its `generated`
    text is its token ids, spelled) against the served generation of the
    same frame and prompt."""
    latest = (json.loads(path.read_text()).get("reasoning") or {}).get("latest")
    if not latest:
        fail(f"{path}: no reasoning.latest report (the run ended before the head wrote one)")
        return
    frame = truth[latest["keyframe"] % len(truth)]["index"]
    served = [g for g in summary["generations"] if g["frame"] == frame and g["prompt"] == latest["prompt"]]
    if not served:
        fail(f"{path}: keyframe {latest['keyframe']} (frame {frame}, {latest['prompt']!r}) was not generated here; raise --frames")
        return
    same = served[0]["text"] == latest["generated"] and served[0]["tokens"] == latest["tokens"]
    summary["rust"] = {"keyframe": latest["keyframe"], "frame": frame, "prompt": latest["prompt"],
                       "tokens": latest["tokens"], "identical": same}
    print(f"Rust head, keyframe {latest['keyframe']} (frame {frame}) {latest['prompt']!r}: {latest['tokens']} tokens, "
          f"{'identical to the served ones' if same else 'DIFFERENT: ' + latest['generated']}")
    if not same:
        fail("the Rust head's report differs from the served generation")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", required=True, type=Path, help="a `sonoflow phantom export` directory")
    ap.add_argument("--model", type=Path, default=Path(__file__).resolve().parent.parent / "onnx" / "umind-nano")
    ap.add_argument("--url", default="127.0.0.1:8081", help="the server's gRPC address")
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5, help="timed generations per frame and prompt")
    ap.add_argument("--max-new-tokens", type=int, default=uh.DEFAULT_MAX_NEW_TOKENS)
    ap.add_argument("--json", type=Path, help="write the summary here")
    ap.add_argument("--rust-stats", type=Path, help="a `sonoflow run --stats-json` report of the same export "
                    "(images source, looping): its reasoning.latest report must read as the served tokens")
    args = ap.parse_args()

    model = uh.ModelDir(args.model)
    vocab = model.vocabulary()
    words = {i: w for w, i in vocab.items()}
    pre = model.manifest["preprocess"]
    encoder = uh.GraphRunner(model.file("vision_encoder"))
    head = uh.HeadGenerator(model)
    image_name = head.image_name
    prompts = model.manifest.get("prompts") or [t["token"] for t in model.manifest.get("tasks", [])]

    client = grpcclient.InferenceServerClient(args.url)
    summary = {"url": args.url, "server": {}, "models": {}, "generations": [], "failures": []}

    def fail(msg):
        summary["failures"].append(msg)
        print("MISMATCH:", msg, file=sys.stderr)

    if not (client.is_server_live() and client.is_server_ready()):
        print(f"the server at {args.url} is not ready", file=sys.stderr)
        return 1
    meta = client.get_server_metadata(as_json=True)
    summary["server"] = {"name": meta.get("name"), "version": meta.get("version")}
    for name in ("vision_encoder", "mask_decoder", "reasoning_head"):
        m = client.get_model_metadata(name, as_json=True)
        summary["models"][name] = {
            "inputs": [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in m.get("inputs", [])],
            "outputs": [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in m.get("outputs", [])],
        }
    contract_in, contract_out = head.contract()
    served = summary["models"]["reasoning_head"]
    if [t.name for t in contract_in] != [t[0] for t in served["inputs"]] or [t.name for t in contract_out] != [t[0] for t in served["outputs"]]:
        fail(f"reasoning_head metadata {served} differs from the contract")

    truth = [json.loads(line) for line in (args.export / "truth.jsonl").read_text().splitlines() if line.strip()]
    latencies = []
    for rec in truth[: args.frames]:
        frame = read_png_gray8(args.export / rec["image"])
        pixels = preprocess(frame, rec["region"], pre)
        local = encoder.run({pre["input"]: pixels})
        tokens = local[image_name]
        remote = infer(client, "vision_encoder", {pre["input"]: pixels}, [image_name]).as_numpy(image_name)
        if not np.array_equal(tokens, remote):
            fail(f"frame {rec['index']}: served image tokens differ from local ones (max |d| {float(np.abs(tokens - remote).max())})")
        for prompt in prompts:
            ids = encode_prompt(vocab, prompt)
            mine = head.serve({image_name: tokens, uh.PROMPT_IDS: ids,
                               uh.MAX_NEW_TOKENS: np.array([args.max_new_tokens], dtype=np.int64)})
            runs = []
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                res = infer(client, "reasoning_head", {
                    image_name: tokens, uh.PROMPT_IDS: ids,
                    uh.MAX_NEW_TOKENS: np.array([args.max_new_tokens], dtype=np.int64)})
                runs.append(((time.perf_counter() - t0) * 1e3, float(res.as_numpy(uh.TOTAL_MS)[0])))
            got = {n: res.as_numpy(n) for n in (uh.TOKENS, uh.TRUNCATED, uh.TASK_WRITTEN, uh.TASK_HIDDEN, uh.KERNELS)}
            same = all(np.array_equal(got[n], mine[n]) for n in got)
            if not same:
                fail(f"frame {rec['index']} {prompt!r}: served {got[uh.TOKENS].tolist()} vs local {mine[uh.TOKENS].tolist()}")
            params = res.get_response().parameters
            ident = {k: v.string_param for k, v in params.items()}
            text = " ".join(words.get(int(t), "?") for t in got[uh.TOKENS][0])
            latencies += [r[0] for r in runs]
            summary["generations"].append({
                "frame": rec["index"], "prompt": prompt, "tokens": int(got[uh.TOKENS].shape[1]),
                "text": text, "truncated": bool(got[uh.TRUNCATED][0]),
                "task_written": got[uh.TASK_WRITTEN][0].tolist(), "kernels": list(got[uh.KERNELS].shape),
                "identical_to_local": same, "server_identity": ident,
                "round_trip_ms": [round(r[0], 2) for r in runs],
                "server_generation_ms": [round(r[1], 2) for r in runs],
                "local_generation_ms": round(float(mine[uh.TOTAL_MS][0]), 2),
            })
            print(f"frame {rec['index']} {prompt!r}: {got[uh.TOKENS].shape[1]} tokens, "
                  f"round trip p50 {np.median([r[0] for r in runs]):.1f} ms (server {np.median([r[1] for r in runs]):.1f} ms), "
                  f"{'identical' if same else 'DIFFERENT'}: {text}")
            if got[uh.KERNELS].shape[1]:
                feats = local[model.manifest["decoder_io"]["features"]]
                dec_in = {model.manifest["decoder_io"]["features"]: feats, model.manifest["decoder_io"]["kernels"]: got[uh.KERNELS]}
                out = infer(client, "mask_decoder", dec_in)
                want = uh.GraphRunner(model.file("mask_decoder")).run(dec_in)
                for n, v in want.items():
                    if not np.array_equal(out.as_numpy(n), v):
                        fail(f"frame {rec['index']}: served mask_decoder {n} differs from local")

    if args.rust_stats:
        compare_rust(args.rust_stats, truth, summary, fail)

    # A malformed request is refused, naming the problem.
    try:
        infer(client, "reasoning_head", {image_name: np.zeros((1, 3, head.width), np.float32),
                                         uh.PROMPT_IDS: np.array([[3]], np.int64)})
        fail("a wrong image-token shape was accepted")
    except InferenceServerException as e:
        summary["refusal"] = {"status": e.status(), "message": e.message()}
        if "INVALID_ARGUMENT" not in str(e.status()):
            fail(f"a wrong shape gave {e.status()}, not INVALID_ARGUMENT")

    if latencies:
        summary["round_trip_ms"] = {"p50": round(float(np.median(latencies)), 2),
                                    "p90": round(float(np.percentile(latencies, 90)), 2),
                                    "max": round(float(np.max(latencies)), 2), "n": len(latencies)}
    print(json.dumps({k: summary[k] for k in ("server", "round_trip_ms", "rust", "failures") if k in summary}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
