"""Recall within each conspicuity band by the lesion's size in model pixels, probe and lesions in the
frame, and what the faint lesions are: does size or probe still matter once conspicuity is known?
    python3 within.py COMBINED_EXPORT FINDINGS.jsonl
COMBINED_EXPORT is evaluate.py's linked dataset (truth.jsonl with e0/... image paths, conspicuity in
each lesion), FINDINGS.jsonl `sonoflow eval --findings-jsonl` over it."""
import collections
import json
import math
import pathlib
import sys

EDGES = (2, 4, 6, 10)
NAMES = ("under 2", "2-4", "4-6", "6-10", "10 and over")


def iou(a, b):
    ix = max(0, min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])); iy = max(0, min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]))
    i = ix * iy; u = (a["x1"] - a["x0"]) * (a["y1"] - a["y0"]) + (b["x1"] - b["x0"]) * (b["y1"] - b["y0"]) - i
    return i / u if u > 0 else 0


def region_size(region):
    """The image region's bounding box (what the model's 256x256 input is letterboxed from)."""
    if region["kind"] == "rect":
        return region["x1"] - region["x0"], region["y1"] - region["y0"]
    return 2 * region["r1"] * math.sin(region["half_angle"]), region["r1"] - region["r0"] * math.cos(region["half_angle"])


def main():
    base = pathlib.Path(sys.argv[1])
    truth = [json.loads(l) for l in open(base / "truth.jsonl")]
    findings = [json.loads(l) for l in open(sys.argv[2])]
    assert len(truth) == len(findings)
    specs = {}
    for e in sorted(base.glob("e*")):
        for s in json.load(open(e / "manifest.json"))["sequences"]:
            for les in s.get("lesions", []):
                specs[(e.name, s["index"], les["id"])] = les
    rows = []
    for rec, out in zip(truth, findings):
        scale = 256 / max(region_size(rec["region"]))
        for les in rec["lesions"]:
            z = les.get("conspicuity")
            if z is None:
                continue
            b = les["bbox"]
            spec = specs.get((rec["image"].split("/")[0], rec["sequence"] % 1_000_000, les["id"]), {})
            rows.append(dict(band=NAMES[sum(z >= e for e in EDGES)],
                             found=max([iou(b, f["box"]) for f in out.get("findings", []) if "box" in f], default=0) >= 0.5,
                             px=max(b["x1"] - b["x0"], b["y1"] - b["y0"]) * scale, probe=rec["probe"],
                             lesions=len(rec["lesions"]), echo=les["attributes"].get("echo_pattern"),
                             mm=les["long_axis"]["length_mm"], contrast=spec.get("contrast_db")))

    def table(title, key, order=None):
        print(f"-- {title}: lesions, found")
        bands = NAMES
        keys = sorted({key(r) for r in rows}, key=lambda k: order.index(k) if order and k in order else str(k))
        print(f"{'':>20}" + "".join(f"{b:>16}" for b in bands))
        for k in keys:
            cells = []
            for b in bands:
                sel = [r for r in rows if r["band"] == b and key(r) == k]
                cells.append(f"{len(sel):>6} {sum(r['found'] for r in sel) / len(sel):>5.2f}" if sel else "-")
            print(f"{str(k):>20}" + "".join(f"{c:>16}" for c in cells))

    table("long side in model pixels", lambda r: "<10" if r["px"] < 10 else "10-20" if r["px"] < 20 else "20-40" if r["px"] < 40 else ">=40",
          ["<10", "10-20", "20-40", ">=40"])
    table("probe", lambda r: r["probe"])
    table("lesions in the frame", lambda r: r["lesions"])
    table("echo pattern", lambda r: r["echo"])
    table("long axis (mm)", lambda r: "<5" if r["mm"] < 5 else "5-10" if r["mm"] < 10 else ">=10", ["<5", "5-10", ">=10"])
    table("drawn contrast (dB)", lambda r: "-" if r["contrast"] is None else "<-20" if r["contrast"] < -20
          else "-20..-6" if r["contrast"] < -6 else "-6..+3" if r["contrast"] < 3 else ">=+3", ["<-20", "-20..-6", "-6..+3", ">=+3"])


if __name__ == "__main__":
    main()
