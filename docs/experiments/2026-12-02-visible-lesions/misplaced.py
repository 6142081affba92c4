"""The lesions whose best detection box overlaps them at IoU 0.1-0.5 (counted once missed and once
false): how the box sits (inside the lesion's box: a fragment; around it: too big; else shifted), its
area against the lesion box's, how many boxes lie over the lesion, and whether a segment's box would
have matched.
    python3 misplaced.py FINDINGS.jsonl EXPORT/truth.jsonl"""
import json, collections, sys
F = [json.loads(l) for l in open(sys.argv[1])]
T = [json.loads(l) for l in open(sys.argv[2])]
def iou(a, b):
    ix = max(0, min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])); iy = max(0, min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]))
    inter = ix * iy; u = (a["x1"] - a["x0"]) * (a["y1"] - a["y0"]) + (b["x1"] - b["x0"]) * (b["y1"] - b["y0"]) - inter
    return inter / u if u > 0 else 0
area = lambda b: (b["x1"] - b["x0"]) * (b["y1"] - b["y0"])
inside = lambda a, b: a["x0"] >= b["x0"] - 1 and a["y0"] >= b["y0"] - 1 and a["x1"] <= b["x1"] + 1 and a["y1"] <= b["y1"] + 1
ratios = []; shape = collections.Counter(); seg_better = 0; n = 0; frag = collections.Counter()
for f, t in zip(F, T):
    L = t["lesions"]
    if not L: continue
    dets = [d["box"] for d in f.get("findings", []) if d["kind"] == "FINDING_KIND_DETECTION"]
    segs = [d["box"] for d in f.get("findings", []) if d["kind"] == "FINDING_KIND_SEGMENT"]
    for l in L:
        lb = l["bbox"]
        best = max([iou(b, lb) for b in dets] or [0])
        if not (0.1 <= best < 0.5): continue
        n += 1
        b = max(dets, key=lambda b: iou(b, lb))
        r = area(b) / area(lb); ratios.append(r)
        shape["box inside the lesion's (a fragment)" if inside(b, lb) else "lesion inside the box (too big)" if inside(lb, b) else "shifted / partly over"] += 1
        on = [d for d in dets if iou(d, lb) > 0.05]
        frag[len(on)] += 1
        sb = max([iou(s, lb) for s in segs] or [0])
        seg_better += sb >= 0.5
ratios.sort()
print(n, "lesions whose best box has IoU 0.1-0.5")
print("box area / lesion box area: p10 %.2f p50 %.2f p90 %.2f" % (ratios[len(ratios)//10], ratios[len(ratios)//2], ratios[9*len(ratios)//10]))
print(dict(shape))
print("boxes over it (IoU > 0.05):", dict(frag))
print("a segment's box at IoU >= 0.5:", seg_better)
