"""Where the false-positive boxes of lesion frames are: per detection box no lesion matched (greedy, IoU
0.5, as sonoflow_perception::accuracy), its best IoU with any lesion of the frame (a duplicate of a
matched lesion, a box on a lesion placed too poorly to match, a box touching one, or tissue), and per
missed lesion, the best IoU of any box with it. With a third argument Z, boxes touching a lesion of
conspicuity under Z and such lesions' misses are counted apart (near, not equal, to
sonoflow eval --ignore-faint-below Z, which still counts a box on a faint lesion under IoU 0.5 as false).
    python3 fp_kinds.py FINDINGS.jsonl EXPORT/truth.jsonl [Z]
FINDINGS.jsonl from `sonoflow eval EXPORT --findings-jsonl`, frame for frame with truth.jsonl."""
import json, collections, sys
findings, truth = sys.argv[1], sys.argv[2]
F = [json.loads(l) for l in open(findings)]
T = [json.loads(l) for l in open(truth)]
def iou(a, b):
    ix = max(0, min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])); iy = max(0, min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]))
    inter = ix * iy; u = (a["x1"] - a["x0"]) * (a["y1"] - a["y0"]) + (b["x1"] - b["x0"]) * (b["y1"] - b["y0"]) - inter
    return inter / u if u > 0 else 0
fp = collections.Counter(); miss = collections.Counter(); fp_echo = collections.Counter()
faint = float(sys.argv[3]) if len(sys.argv) > 3 else None
for f, t in zip(F, T):
    lesions = t["lesions"]
    if not lesions:
        continue
    boxes = [d["box"] for d in f.get("findings", []) if d["kind"] == "FINDING_KIND_DETECTION"]
    matched = [False] * len(lesions)
    for b in boxes:
        cands = [(iou(b, l["bbox"]), i) for i, l in enumerate(lesions) if not matched[i]]
        best = max(cands) if cands else (0, None)
        if best[0] >= 0.5:
            matched[best[1]] = True
            continue
        anyiou = max(iou(b, l["bbox"]) for l in lesions)
        near = max(lesions, key=lambda l: iou(b, l["bbox"]))
        z = near.get("conspicuity")
        if faint is not None and anyiou > 0 and z is not None and z < faint:
            fp["on a faint lesion (ignored)"] += 1
            continue
        kind = ("duplicate (IoU>=0.5 with a matched lesion)" if anyiou >= 0.5 else
                "on a lesion, IoU 0.1-0.5" if anyiou >= 0.1 else
                "touching a lesion, IoU under 0.1" if anyiou > 0 else "on tissue")
        fp[kind] += 1
        if anyiou >= 0.1:
            fp_echo[near["attributes"].get("echo_pattern")] += 1
    for i, l in enumerate(lesions):
        if matched[i]:
            continue
        z = l.get("conspicuity")
        if faint is not None and z is not None and z < faint:
            continue
        best = max([iou(b, l["bbox"]) for b in boxes] or [0])
        miss["a box on it, IoU 0.1-0.5" if best >= 0.1 else "a box touching it" if best > 0 else "no box on it"] += 1
print("false-positive boxes on lesion frames:", dict(fp), sum(fp.values()))
print("  of those on a lesion (IoU >= 0.1), by its echo pattern:", dict(fp_echo))
print("missed lesions:", dict(miss), sum(miss.values()))
