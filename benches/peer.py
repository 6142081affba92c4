#!/usr/bin/env python3
"""The peer: what a lab would write instead of sonoflow, the same per-frame work
in plain Python (PyGObject appsink, onnxruntime, numpy), measured as sonoflow's
run report measures itself, to set the two side by side.

Mirrored from sonoflow, everything read from the model's sonoflow-model.toml:
crop to the image region, letterbox with bilinear sampling, normalise
(inference/src/preprocess.rs); vision encoder, mask decoder with the default
kernels, one intra-op thread, CPU, outputs checked finite (frame_model.rs);
each task row's logits sampled bilinearly at every frame pixel of the crop and
cut at 0 (perception/src/mask.rs); 4-connected components of 30 px or more
(components.rs); per segment the long axis (maximum Feret over boundary pixel
centres, via the convex hull) and the widest chord across it, plus half a pixel
each, in px and mm (calipers.rs); the detection row's boxes and confidences.
Left out, so the comparison favours the peer: contours, the calipers'
uncertainty re-cuts, tracking, overlay, reasoning head. .venv has neither scipy
nor OpenCV, so components are labelled by runs with a small union-find.

Frames: a phantom export (linear probe, 4 cm, one lesion, as
pipelines/bench-umind.toml; made on first use with target/release/sonoflow)
played by multifilesrc and paced by `identity sync=true`: the frames sonoflow
sees, with truth.jsonl for the image region, the pixel spacing and the lesions
the findings line is checked against. `--source snow`: a live videotestsrc
(whole frame, px only). The appsink holds 2 frames and drops the oldest, like
sonoflow's default hand-off; gaps in the frames' timestamps count as dropped.

latency_ms: from capture (the buffer's PTS as running time, when the source or
`identity sync=true` releases it) to post-processing done, on the pipeline
clock. jitter_ms: standard deviation of the interval between consecutive
outputs (latency_ms.sd is that of latency). cpu_ms_per_frame: the whole
process's CPU time (GStreamer's threads, PNG decoding included) per frame out.

numpy and onnxruntime come from .venv, PyGObject from Debian's python3-gi
(/usr/lib/python3/dist-packages, appended to sys.path; same Python minor).
Usage: .venv/bin/python benches/peer.py [--model onnx/umind-nano] [--frames 300]
       [--width 640 --height 480 --fps 30] [--source phantom|snow] [--phantom DIR] [--json PATH]
"""
import argparse
import json
import math
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_COMPONENT_PX = 30  # sonoflow_perception::MIN_COMPONENT_PX
EXPORT_FRAMES = 300  # one 10 s scene, looped when more frames are asked for
# sonoflow_pipeline::CDF_QUANTILES
CDF_FRACTIONS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1.0)


def dependencies():
    """numpy and onnxruntime, and GStreamer through PyGObject; exits naming what is missing and the fix."""
    try:
        import numpy
        import onnxruntime
    except ImportError as e:
        sys.exit(f"peer.py: Python package {e.name} is missing; run it with .venv/bin/python (scripts/bootstrap.sh makes .venv)")
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import gi
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except ImportError as e:
        sys.exit(f"peer.py: PyGObject for Python {sys.version_info.major}.{sys.version_info.minor} is missing ({e}); "
                 "apt-get install python3-gi (Debian's python3 and .venv's must share a minor version)")
    except ValueError as e:
        sys.exit(f"peer.py: GStreamer's introspection data is missing ({e}); apt-get install gir1.2-gstreamer-1.0")
    Gst.init(None)
    return numpy, onnxruntime, Gst


np, ort, Gst = dependencies()


def taps(f, n):
    """Bilinear taps at positions f into an axis of n cells, clamped: low and high index, weight of the high."""
    f = np.clip(f, 0, n - 1)
    lo = np.floor(f).astype(np.intp)
    return lo, np.minimum(lo + 1, n - 1), (f - lo).astype(np.float32)


def axis(model, start, length, scale, pad):
    """One axis of the resize (preprocess.rs): taps into the frame, and which model pixels are padding."""
    u = np.arange(model) + 0.5
    lo, hi, w = taps((u - pad) / scale - 0.5, length)
    return start + lo, start + hi, w, (u < pad) | (u > pad + length * scale)


class Model:
    """Encoder + mask decoder with the default kernels, and the mapping between frame and model input."""

    def __init__(self, root):
        if not (root / "sonoflow-model.toml").is_file():
            sys.exit(f"peer.py: {root} has no sonoflow-model.toml; pass --model with a model directory such as onnx/umind-nano")
        m = tomllib.loads((root / "sonoflow-model.toml").read_text())
        self.p, self.io, k = m["preprocess"], m["decoder_io"], m["default_kernels"]
        if self.p["channels"] != 1 or self.p["layout"] != "nchw":
            sys.exit(f"peer.py: {root} takes {self.p['channels']} channels {self.p['layout']}; the peer feeds gray NCHW only")
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        graph = lambda g: ort.InferenceSession(str(root / m["graphs"][g]["file"]), options, providers=["CPUExecutionProvider"])
        self.encoder, self.decoder = graph("vision_encoder"), graph("mask_decoder")
        self.kernels = np.fromfile(root / k["file"], dtype="<f4").reshape(1, len(k["tokens"]), k["size"])
        row = lambda kind: next((i for i, t in enumerate(k["tokens"]) if any(x["token"] == t and x["drives"] == kind for x in m.get("tasks", []))), None)
        self.seg_row, self.det_row = row("segmentation"), row("detection")
        if None in (self.seg_row, self.det_row):
            sys.exit(f"peer.py: {root}'s default kernels drive no segmentation or no detection task; the peer needs both")
        self.input = np.zeros((1, 1, self.p["height"], self.p["width"]), np.float32)

    def plan(self, crop):
        """Letterbox (or stretch) `crop` (x0, y0, width, height) into the model input."""
        p, (x0, y0, cw, ch) = self.p, crop
        sx, sy = p["width"] / cw, p["height"] / ch
        if p["resize"] == "letterbox":
            sx = sy = min(sx, sy)
        self.crop, self.scale, self.pad = crop, (sx, sy), ((p["width"] - cw * sx) / 2, (p["height"] - ch * sy) / 2)
        self.x, self.y = axis(p["width"], x0, cw, sx, self.pad[0]), axis(p["height"], y0, ch, sy, self.pad[1])
        self.grid = None

    def run(self, frame):
        """Preprocess, encoder, decoder: mask logits (tasks, h, w), or None when not all finite."""
        p, (xlo, xhi, wx, xpad), (ylo, yhi, wy, ypad) = self.p, self.x, self.y
        r0, r1 = frame[ylo].astype(np.float32), frame[yhi].astype(np.float32)
        top, bottom = r0[:, xlo] * (1 - wx) + r0[:, xhi] * wx, r1[:, xlo] * (1 - wx) + r1[:, xhi] * wx
        mean, std, image = p["mean"][0], p["std"][0], self.input[0, 0]
        image[:] = ((top * (1 - wy)[:, None] + bottom * wy[:, None]) / 255 - mean) / std
        image[ypad, :] = image[:, xpad] = (p.get("pad_value", 0) / 255 - mean) / std
        features = self.encoder.run([self.io["features"]], {p["input"]: self.input})[0]
        inputs = {self.io["features"]: features, self.io["kernels"]: self.kernels}
        logits = self.decoder.run([self.io["mask_logits"]], inputs)[0][0]
        return logits if np.isfinite(logits).all() else None

    def to_frame(self, grid):
        """One task's logits at every frame pixel centre of the crop (mask.rs)."""
        if self.grid is None:
            (x0, y0, cw, ch), (gh, gw) = self.crop, grid.shape
            u = (np.arange(cw) + 0.5) * self.scale[0] + self.pad[0]
            v = (np.arange(ch) + 0.5) * self.scale[1] + self.pad[1]
            self.grid = taps(u / self.p["width"] * gw - 0.5, gw), taps(v / self.p["height"] * gh - 0.5, gh)
        (c0, c1, wx), (q0, q1, wy) = self.grid
        across = grid[:, c0] * (1 - wx) + grid[:, c1] * wx  # bilinear is separable: columns, then rows
        return across[q0] * (1 - wy)[:, None] + across[q1] * wy[:, None]


def components(logits, min_area=MIN_COMPONENT_PX):
    """4-connected components of logits > 0, largest first: (area, box x0, y0, x1, y1, max logit, the box's mask)."""
    edges = np.diff(np.pad(logits > 0, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    ys, xs = np.nonzero(edges)  # per row: start, end, start, end, ...
    ys, starts, ends = ys[0::2], xs[0::2], xs[1::2]
    parent = list(range(len(ys)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = np.searchsorted(ys, np.arange(logits.shape[0] + 2)).tolist()
    a, b = starts.tolist(), ends.tolist()
    for y in np.unique(ys).tolist():  # the runs of row y against those of row y + 1
        i, j = first[y], first[y + 1]
        while i < first[y + 1] and j < first[y + 2]:
            if a[i] < b[j] and a[j] < b[i]:
                parent[find(i)] = find(j)
            i, j = (i + 1, j) if b[i] < b[j] else (i, j + 1)
    if not parent:
        return []
    _, label = np.unique([find(i) for i in range(len(parent))], return_inverse=True)
    area = np.bincount(label, weights=ends - starts)
    found = []
    for c in np.nonzero(area >= min_area)[0]:
        runs = np.nonzero(label == c)[0]
        x0, y0, x1, y1 = starts[runs].min(), ys[runs].min(), ends[runs].max(), ys[runs].max() + 1
        mask = np.zeros((y1 - y0, x1 - x0), bool)
        for r in runs.tolist():
            mask[ys[r] - y0, a[r] - x0:b[r] - x0] = True
        found.append((int(area[c]), x0, y0, x1, y1, float(logits[y0:y1, x0:x1][mask].max()), mask))
    return sorted(found, key=lambda f: -f[0])


def hull(points):
    """Andrew's monotone chain, in the order calipers.rs builds it."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return np.array(pts)

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) <= (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0]):
                out.pop()
            out.append(p)
        return out

    return np.array(half(pts)[:-1] + half(pts[::-1])[:-1])


def calipers(mask):
    """Long and short axis of one component (its box's mask), as end-point pairs in box pixels."""
    pad = np.pad(mask, 1)
    by, bx = np.nonzero(mask & ~(pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]))
    h = hull(np.stack([bx, by], 1) + 0.5)
    d = ((h[:, None, :] - h[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmax(d), d.shape)
    a, b, length = h[i], h[j], math.sqrt(d[i, j])
    if length == 0:
        return (a, a + (1, 0)), (a, a + (1, 0))
    u = (b - a) / length
    ys, xs = np.nonzero(mask)
    dx, dy = xs + 0.5 - a[0], ys + 0.5 - a[1]
    slices = int(length) + 1
    k = np.minimum(np.maximum(dx * u[0] + dy * u[1], 0).astype(np.intp), slices - 1)
    w = -dx * u[1] + dy * u[0]
    lo, hi = np.full(slices, np.inf), np.full(slices, -np.inf)
    np.minimum.at(lo, k, w)
    np.maximum.at(hi, k, w)
    at = int(np.argmax(hi - lo))
    across = lambda s: a + (at + 0.5) * u + s * np.array([-u[1], u[0]])
    return (a - 0.25 * u, b + 0.25 * u), (across(lo[at] - 0.25), across(hi[at] + 0.25))


def mm(caliper, line):
    """A caliper's length in mm with the frame's pixel spacing; None without one."""
    (ax, ay), (bx, by) = caliper
    return math.hypot((bx - ax) * line["pixel_spacing"]["x_mm"], (by - ay) * line["pixel_spacing"]["y_mm"]) if line else None


def source(args):
    """The launch line up to the appsink, and the truth lines (empty for snow)."""
    raw = f"video/x-raw,format=GRAY8,framerate={args.fps}/1"
    if args.source == "snow":
        return f"videotestsrc is-live=true pattern=snow ! {raw},width={args.width},height={args.height}", []
    out = args.phantom or ROOT / f"out/peer/phantom-{args.width}x{args.height}"
    if not (out / "truth.jsonl").exists():
        binary = ROOT / "target/release/sonoflow"
        if not binary.exists():
            sys.exit(f"peer.py: no phantom export at {out} and no {binary} to make one; "
                     "cargo build --release -p sonoflow, or pass --phantom DIR or --source snow")
        subprocess.run([binary, "phantom", "export", "--frames", str(EXPORT_FRAMES), "--sequence-length", str(EXPORT_FRAMES),
                        "--seed", "1", "--probe", "linear", "--depth-cm", "4", "--lesions", "1",
                        "--width", str(args.width), "--height", str(args.height), "--out", out], check=True)
    truth = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    return (f"multifilesrc location={out}/images/%06d.png index=0 loop=true caps=image/png,framerate={args.fps}/1 "
            f"! pngdec ! videoconvert ! {raw} ! identity sync=true"), truth


def region_crop(r, width, height):
    """The crop (x0, y0, width, height) around a truth line's image region, inside the frame (ResizePlan::new)."""
    if r["kind"] == "rect":
        box = r["x0"], r["y0"], r["x1"], r["y1"]
    else:
        half, apex = r["r1"] * math.sin(r["half_angle"]), r["apex"]
        box = apex["x"] - half, apex["y"] + r["r0"] * math.cos(r["half_angle"]), apex["x"] + half, apex["y"] + r["r1"]
    x0, y0 = min(math.floor(max(box[0], 0)), width - 1), min(math.floor(max(box[1], 0)), height - 1)
    return x0, y0, min(max(math.ceil(box[2]), x0 + 1), width) - x0, min(max(math.ceil(box[3]), y0 + 1), height) - y0


def measure(args, model, launch, truth):
    """Runs the pipeline for args.frames outputs; one record per frame, the frames the source sent, the CPU seconds."""
    pipeline = Gst.parse_launch(f"{launch} ! appsink name=sink sync=false max-buffers=2 drop=true")
    sink, bus, records, first, seen = pipeline.get_by_name("sink"), pipeline.get_bus(), [], None, None
    pipeline.set_state(Gst.State.PLAYING)
    cpu = time.process_time()
    while len(records) < args.frames:
        sample = sink.emit("try-pull-sample", 2 * Gst.SECOND)
        error = bus.pop_filtered(Gst.MessageType.ERROR)
        if sample is None or error:
            pipeline.set_state(Gst.State.NULL)
            sys.exit(f"peer.py: no frame from `{launch}`: " + (error.parse_error()[0].message if error else "timed out"))
        buf, caps = sample.get_buffer(), sample.get_caps().get_structure(0)
        width, height = caps.get_value("width"), caps.get_value("height")
        captured = sample.get_segment().to_running_time(Gst.Format.TIME, buf.pts)
        index = round(captured * args.fps / Gst.SECOND)
        first = index if first is None else first
        line = truth[index % len(truth)] if truth else None
        crop = region_crop(line["region"], width, height) if line and model.p["crop"] == "image-region" else (0, 0, width, height)
        if seen != (width, height, crop):  # a new frame size, or a new sequence of a phantom export
            model.plan(crop)
            seen = (width, height, crop)
        frame = np.frombuffer(buf.extract_dup(0, buf.get_size()), np.uint8).reshape(height, -1)[:, :width]
        t0 = time.perf_counter()
        logits = model.run(frame)
        t1 = time.perf_counter()
        segments, boxes = [], []
        if logits is not None:
            for area, *_, mask in components(model.to_frame(logits[model.seg_row])):
                long, short = calipers(mask)
                segments.append((area, math.dist(*long), math.dist(*short), mm(long, line)))
            boxes = [(box, 1 / (1 + math.exp(-top))) for _, *box, top, _ in components(model.to_frame(logits[model.det_row]))]
        t2 = time.perf_counter()
        done = pipeline.get_clock().get_time() - pipeline.get_base_time()
        records.append({"latency": (done - captured) / 1e6, "model": (t1 - t0) * 1e3, "post": (t2 - t1) * 1e3, "done": done / 1e6,
                        "invalid": logits is None, "segment": segments[0] if segments else None, "boxes": len(boxes), "truth": line})
    cpu = time.process_time() - cpu
    pipeline.set_state(Gst.State.NULL)
    return records, index - first + 1, cpu, seen[:2]


def findings(records):
    """The largest segment per frame beside the phantom's largest lesion: proof the work is on real frames."""
    mean = lambda xs: round(float(np.mean(xs)), 2) if xs else None
    lesion = lambda t: max(t["lesions"], key=lambda les: les["area_px"]) if t and t["lesions"] else None
    hits = [(r["segment"], lesion(r["truth"])) for r in records if r["segment"]]
    truths = [lesion(r["truth"]) for r in records if lesion(r["truth"])]
    return {"frames_with_segment": len(hits), "frames_with_detection": sum(r["boxes"] > 0 for r in records),
            "area_px": mean([s[0] for s, _ in hits]), "long_axis_px": mean([s[1] for s, _ in hits]),
            "short_axis_px": mean([s[2] for s, _ in hits]), "long_axis_mm": mean([s[3] for s, _ in hits if s[3] is not None]),
            "truth_area_px": mean([t["area_px"] for t in truths]), "truth_long_axis_mm": mean([t["long_axis"]["length_mm"] for t in truths]),
            "long_axis_error_mm": mean([abs(s[3] - t["long_axis"]["length_mm"]) for s, t in hits if t])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "onnx/umind-nano")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--source", choices=["phantom", "snow"], default="phantom")
    ap.add_argument("--phantom", type=Path, help="a `sonoflow phantom export` directory (default: out/peer/phantom-WxH)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.frames < 1 or args.fps < 1:
        ap.error("--frames and --fps must be at least 1")
    model = Model(args.model)
    launch, truth = source(args)
    for _ in range(5):  # sessions allocate and optimise on first use; sonoflow warms up too
        model.plan((0, 0, args.width, args.height))
        model.run(np.zeros((args.height, args.width), np.uint8))
    records, sent, cpu, (width, height) = measure(args, model, launch, truth)

    col = lambda key: sorted(r[key] for r in records)
    q = lambda xs, f: xs[min(len(xs) - 1, int(f * len(xs)))]
    n, lat, mod, post = len(records), col("latency"), col("model"), col("post")
    report = {
        "peer": "python", "frames": n, "frames_in": sent, "dropped": sent - n, "invalid_outputs": sum(r["invalid"] for r in records),
        "latency_ms": {"p50": q(lat, 0.5), "p99": q(lat, 0.99), "max": lat[-1], "mean": float(np.mean(lat)), "sd": float(np.std(lat))},
        "jitter_ms": float(np.std(np.diff([r["done"] for r in records]))), "cpu_ms_per_frame": cpu * 1e3 / n,
        "model_ms": {"p50": q(mod, 0.5), "p99": q(mod, 0.99)}, "postprocess_ms": {"p50": q(post, 0.5), "p99": q(post, 0.99)},
        "width": width, "height": height, "fps": args.fps, "source": launch, "onnxruntime": ort.__version__,
        # [fraction, ms] points of the latency distribution, as sonoflow's latency_cdf_ms.
        "cdf_ms": [[f, q(lat, f) if f < 1 else lat[-1]] for f in CDF_FRACTIONS],
    }
    if truth:
        report["findings"] = findings(records)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"peer (python, onnxruntime {ort.__version__} cpu, 1 intra-op thread; {args.source} {width}x{height}@{args.fps}): "
          f"{n} frames, dropped {sent - n}, latency p50 {q(lat, 0.5):.2f} p99 {q(lat, 0.99):.2f} max {lat[-1]:.2f} ms, "
          f"jitter {report['jitter_ms']:.2f} ms, model p50 {q(mod, 0.5):.2f} p99 {q(mod, 0.99):.2f} ms, "
          f"post-processing p50 {q(post, 0.5):.2f} p99 {q(post, 0.99):.2f} ms, CPU {report['cpu_ms_per_frame']:.2f} ms/frame")
    if truth:
        print("findings: " + ", ".join(f"{k} {v}" for k, v in report["findings"].items()))


if __name__ == "__main__":
    main()
