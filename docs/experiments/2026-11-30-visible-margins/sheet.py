"""Contact sheet of a phantom export's lesions (6 mm and longer, one per
sequence), a row per value of a descriptor (analysis only).

    python sheet.py EXPORT_DIR FIELD OUT.png [PER_ROW]
"""
import json, sys, pathlib
from PIL import Image, ImageDraw
export, field, out = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
per = int(sys.argv[4]) if len(sys.argv) > 4 else 8
groups = {}
for line in open(export / "truth.jsonl"):
    rec = json.loads(line)
    for l in rec["lesions"]:
        v = l["attributes"].get(field) if field != "class" else l["class"]
        if l["long_axis"]["length_mm"] < 6: continue
        g = groups.setdefault(v, [])
        if len(g) < per and all(x[0]["sequence"] != rec["sequence"] for x in g):
            g.append((rec, l))
S = 112
sheet = Image.new("L", (S * per, (S + 14) * len(groups)), 0)
d = ImageDraw.Draw(sheet)
for row, (v, items) in enumerate(sorted(groups.items())):
    y = row * (S + 14)
    d.text((2, y), str(v), fill=255)
    for col, (rec, l) in enumerate(items):
        img = Image.open(export / rec["image"]).convert("L")
        b = l["bbox"]; w, h = b["x1"] - b["x0"], b["y1"] - b["y0"]; pad = 0.4 * max(w, h)
        c = img.crop((int(b["x0"] - pad), int(b["y0"] - pad), int(b["x1"] + pad), int(b["y1"] + pad)))
        sheet.paste(c.resize((S - 2, S - 2)), (col * S, y + 14))
sheet.save(out)
print({k: len(v) for k, v in groups.items()})
