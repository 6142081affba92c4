"""Prints issue 18's figures from several metrics.json files side by side:

    python3 docs/experiments/2026-12-01-more-lesion-free-frames/compare.py A.json B.json ...
"""
import json, sys

def get(m, path):
    for k in path.split("."):
        if m is None:
            return None
        m = m.get(k) if isinstance(m, dict) else None
    return m

def print_row(label, vals):
    print(f"{label:24s}" + "".join(f"{v:10.3f}" if isinstance(v, (int, float)) else f"{str(v):>10s}" for v in vals))

ROWS = [
    ("Dice default", "dice_default"), ("Dice reasoned", "dice_reasoned"),
    ("det precision", "detection_precision"), ("det recall", "detection_recall"),
    ("long MAE", "long_axis_mae_mm"), ("short MAE", "short_axis_mae_mm"), ("long p95", "long_axis_p95_mm"),
    ("FP/100 empty", "fp_per_100_empty_frames"), ("FP findings", "false_positive_findings"), ("FP frames", "false_positive_frames"),
] + [(f"acc {a}", f"attribute_accuracy.{a}") for a in ["lesion", "margin", "echo_pattern", "class", "assessment", "shape", "orientation", "posterior", "calcifications"]] + [
    ("selection gain", "selection.gain"),
] + [(f"{e} Dice", f"by_echo_pattern.{e}.dice_mean") for e in ["anechoic", "hypoechoic", "isoechoic", "hyperechoic", "heterogeneous", "complex_cystic_solid"]] + [
    ("encoder p50 ms", "encoder_ms.p50"), ("decoder p50 ms", "decoder_ms.p50"),
]
STRESS_KEYS = ["dice_default", "detection_precision", "detection_recall", "long_axis_mae_mm", "fp_per_100_empty_frames"]

ms = [json.load(open(p)) for p in sys.argv[1:]]
for label, path in ROWS:
    print_row(label, [get(m, path) for m in ms])
for name in ms[0].get("stress_sets", {}):
    for key in STRESS_KEYS:
        print_row(f"{name[:14]} {key[:9]}", [get(m.get("stress_sets", {}).get(name), key) for m in ms])
