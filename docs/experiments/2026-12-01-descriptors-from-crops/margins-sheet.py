"""One contact sheet: eight lesions of each margin (one per sequence, the largest
lesion of its first frame, a window twice its box), echo pattern under each.
    onnx/.venv/bin/python margins-sheet.py out/umind-data-v5/train margins-v5.jpg"""
import json, os, sys
from PIL import Image, ImageDraw
root = sys.argv[1]; out = sys.argv[2]
want = ["angular", "indistinct", "spiculated", "microlobulated", "circumscribed"]
rows = {m: [] for m in want}
seen = set()
for line in open(os.path.join(root, "truth.jsonl")):
    t = json.loads(line)
    if t["sequence"] in seen or not t["lesions"]: continue
    les = max(t["lesions"], key=lambda l: l["area_px"])
    m = les["attributes"]["margin"]
    if len(rows[m]) >= 8: continue
    seen.add(t["sequence"])
    b = les["bbox"]; cx, cy = (b["x0"] + b["x1"]) / 2, (b["y0"] + b["y1"]) / 2
    h = max(b["x1"] - b["x0"], b["y1"] - b["y0"], 8)
    im = Image.open(os.path.join(root, t["image"])).convert("L")
    rows[m].append((im.transform((128, 128), Image.EXTENT, (cx - h, cy - h, cx + h, cy + h), Image.BILINEAR), les["attributes"]["echo_pattern"][:5]))
sheet = Image.new("L", (8 * 130 + 110, 5 * 140), 0)
d = ImageDraw.Draw(sheet)
for r, m in enumerate(want):
    d.text((2, r * 140 + 60), m[:12], fill=255)
    for c, (crop, ep) in enumerate(rows[m]):
        sheet.paste(crop, (110 + c * 130, r * 140)); d.text((110 + c * 130, r * 140 + 128), ep, fill=200)
sheet.save(out, quality=85)
