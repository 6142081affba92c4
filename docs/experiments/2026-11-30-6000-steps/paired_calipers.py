"""Caliper errors of two models on the same lesions: for each frame of a
phantom export, each model's largest segmented finding (the first segment
of its `sonoflow eval --findings-jsonl` line) against the frame's largest
lesion, when their boxes overlap at IoU >= 0.5 (as the self-check pairs
them); then the long- and short-axis errors over the frames both measured.

    python3 paired_calipers.py EXPORT SHIPPED.jsonl EXPERIMENT.jsonl
"""
import json
import statistics
import sys


def segments(path):
    out = {}
    for line in open(path):
        r = json.loads(line)
        out[int(r.get("frameId", 0))] = [f for f in r.get("findings", []) if f["kind"] == "FINDING_KIND_SEGMENT"]
    return out


def iou(a, b):
    ix = max(0, min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]))
    iy = max(0, min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]))
    inter = ix * iy
    union = (a["x1"] - a["x0"]) * (a["y1"] - a["y0"]) + (b["x1"] - b["x0"]) * (b["y1"] - b["y0"]) - inter
    return inter / union if union > 0 else 0


def errors(truth, found):
    """frame index -> (long, short) absolute error in mm."""
    out = {}
    for t in truth:
        if not t["lesions"] or not found.get(t["index"]):
            continue
        lesion = max(t["lesions"], key=lambda l: l["area_px"])
        seg = found[t["index"]][0]
        if "longAxis" in seg and iou(seg["box"], lesion["bbox"]) >= 0.5:
            out[t["index"]] = (abs(seg["longAxis"]["lengthMm"] - lesion["long_axis"]["length_mm"]),
                               abs(seg["shortAxis"]["lengthMm"] - lesion["short_axis"]["length_mm"]))
    return out


def main():
    export, shipped, experiment = sys.argv[1:4]
    truth = [json.loads(l) for l in open(f"{export}/truth.jsonl")]
    a, b = errors(truth, segments(shipped)), errors(truth, segments(experiment))
    both = sorted(set(a) & set(b))
    mean = statistics.mean
    print(f"measured: shipped {len(a)}, experiment {len(b)}, both {len(both)}")
    for axis, k in (("long", 0), ("short", 1)):
        sa, sb = [a[i][k] for i in both], [b[i][k] for i in both]
        print(f"{axis} axis on both: mean {mean(sa):.3f} -> {mean(sb):.3f} mm, "
              f"median {statistics.median(sa):.2f} -> {statistics.median(sb):.2f} mm")


if __name__ == "__main__":
    main()
