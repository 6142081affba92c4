#!/usr/bin/env python3
"""The bare-inference floor through Python's onnxruntime: a model's vision
encoder + mask decoder in a plain loop on a preloaded input, one intra-op
thread, CPU. Prints per-frame latency p50/p99/max. With FPS (0: unpaced) the
loop sleeps between inferences like a live source does; with JSON the figures
are also written there, as the Rust floor (benches/floor.rs) writes them.

Usage: .venv/bin/python benches/bare_floor.py [MODEL_DIR] [ITERATIONS] [FPS] [JSON]
"""
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tiny-model")
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    fps = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    period = 1.0 / fps if fps > 0 else 0.0
    manifest = tomllib.loads((root / "sonoflow-model.toml").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    enc = ort.InferenceSession(str(root / manifest["graphs"]["vision_encoder"]["file"]), options, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(root / manifest["graphs"]["mask_decoder"]["file"]), options, providers=["CPUExecutionProvider"])
    p = manifest["preprocess"]
    image = np.zeros((1, p["channels"], p["height"], p["width"]), dtype=np.float32)
    k = manifest["default_kernels"]
    kernels = np.fromfile(root / k["file"], dtype="<f4").reshape(1, len(k["tokens"]), k["size"])
    io = manifest["decoder_io"]
    feature_index = [o.name for o in enc.get_outputs()].index(io["features"])
    times = []
    for i in range(iterations + 20):
        t0 = time.perf_counter()
        features = enc.run(None, {p["input"]: image})[feature_index]
        dec.run(None, {io["features"]: features, io["kernels"]: kernels})
        spent = time.perf_counter() - t0
        if i >= 20:
            times.append(spent * 1000.0)
        if period > spent:
            time.sleep(period - spent)
    times.sort()
    q = lambda f: times[min(len(times) - 1, int(f * len(times)))]
    pacing = f"paced at {fps:.0f} fps" if period else "tight loop"
    print(f"bare floor (python/onnxruntime {ort.__version__}, cpu, intra_threads 1, {pacing}): {iterations} iterations, "
          f"encoder+decoder p50 {q(0.5):.3f} ms p99 {q(0.99):.3f} ms max {times[-1]:.3f} ms")
    if len(sys.argv) > 4:
        figures = {"provider": "cpu", "intra_threads": 1, "paced_fps": fps or None, "iterations": iterations,
                   "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": times[-1]}
        Path(sys.argv[4]).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
