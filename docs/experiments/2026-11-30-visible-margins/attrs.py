"""Per-frame report attributes against the truth on a phantom export, and the
confusions per echo-pattern group (analysis only; needs onnxruntime, tokenizers,
pillow and numpy, not PyTorch).

    python attrs.py MODEL_DIR EXPORT_DIR [FRAMES] [ROWS_JSON]
"""
import sys, types, json, pathlib, collections
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "onnx"))
# Stubs for the torch-only modules evaluate.py imports constants from.
D_MODEL, LAYERS, HEADS = 192, 4, 6
m = types.ModuleType("umind.model"); m.HEADS = HEADS; sys.modules["umind.model"] = m
e = types.ModuleType("umind.export"); e.HEAD_DIM = D_MODEL // HEADS
e.past_names = lambda: [n for i in range(LAYERS) for n in (f"past_key_values.{i}.key", f"past_key_values.{i}.value")]
sys.modules["umind.export"] = e
f = types.ModuleType("umind.finetune"); f.CLASS_PROMPTS = {"cyst": "[SEG] cyst", "mass": "[SEG] mass", "lesion": "[SEG] lesion"}
sys.modules["umind.finetune"] = f
import numpy as np
from PIL import Image
from umind import evaluate, data, report

model_dir, export = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
model = evaluate.Model(model_dir)
recs = [json.loads(l) for l in open(export / "truth.jsonl")]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else len(recs)
rows = []
for k, rec in enumerate(recs[:limit]):
    frame = np.asarray(Image.open(export / rec["image"]), dtype=np.float32)
    h, w = frame.shape
    plan = data.ResizePlan(w, h, rec["region"])
    x = data.normalise(plan.sample(frame))[None, None]
    _, emb = model.encode(x)
    text, _ = model.generate(emb)
    got = report.parse(text)
    want = report.parse(report.for_lesions(rec["lesions"]))
    rows.append({"i": k, "group": evaluate.echo_group(rec["lesions"]), "n": len(rec["lesions"]),
                 "kinds": [l.get("kind") for l in rec["lesions"]],
                 "want": want, "got": got, "image": rec["image"],
                 "sizes": sorted([l["area_px"] for l in rec["lesions"]], reverse=True)})
json.dump(rows, open(sys.argv[4] if len(sys.argv) > 4 else "rows.json", "w"))
conf = collections.defaultdict(collections.Counter)
for r in rows:
    for field in ("class", "echo_pattern", "assessment", "margin", "shape", "posterior"):
        if field in r["want"]:
            conf[(r["group"], field)][(r["want"][field], r["got"].get(field))] += 1
for key in sorted(conf, key=str):
    print(key, dict(conf[key].most_common(8)))
