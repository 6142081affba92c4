"""Masks of the faint lesions of the training frames, in the training cache's order: the pixels
(resampled as the model sees them, grown by 2 px) of each lesion whose conspicuity in its frame
(truth.jsonl, sonoflow phantom export) is under --below. Training leaves them out of the mask
losses (neither lesion nor tissue).
    onnx/.venv/bin/python faint_masks.py --data out/umind-data-v12 --below 4 --out out/faint4.npz
The training cache (train.sh's, `cache/train-v2`) gives the frames' order; the truth of train,
train-empty and train-plain must hold the conspicuity (exported by sonoflow as of this experiment)."""
import argparse, json, pathlib, sys
import numpy as np
from PIL import Image
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "onnx"))
from umind import data

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--below", type=float, default=4.0)
ap.add_argument("--out", required=True)
args = ap.parse_args()
root = pathlib.Path(args.data)
meta = json.loads((root / "cache" / "train-v2.json").read_text())
truth = {}
for split in ("train", "train-empty", "train-plain"):
    for line in open(root / split / "truth.jsonl"):
        r = json.loads(line)
        truth[(split, r["index"])] = r
index, masks, lesions, faint = [], [], 0, 0
for i, rec in enumerate(meta["records"]):
    split = pathlib.Path(rec["export"]).name
    new = truth[(split, rec["index"])]
    assert [l["id"] for l in new["lesions"]] == [l["id"] for l in rec["lesions"]], (split, rec["index"])
    lesions += len(new["lesions"])
    values = [l["label"] for l in new["lesions"] if l.get("conspicuity") is not None and l["conspicuity"] < args.below]
    if not values:
        continue
    faint += len(values)
    labels = np.asarray(Image.open(root / split / new["labels"]))
    plan = data.ResizePlan(labels.shape[1], labels.shape[0], new["region"])
    m = np.nan_to_num(plan.sample(np.isin(labels, values).astype(np.float32)), nan=0.0) > 0.01
    grown = m.copy()
    for _ in range(2):
        g = grown.copy()
        g[1:] |= grown[:-1]; g[:-1] |= grown[1:]; g[:, 1:] |= grown[:, :-1]; g[:, :-1] |= grown[:, 1:]
        grown = g
    index.append(i); masks.append(grown.astype(np.uint8) * 255)
np.savez_compressed(args.out, index=np.array(index, dtype=np.int64), masks=np.stack(masks))
print(f"{faint} of {lesions} training lesions under conspicuity {args.below}, on {len(index)} of {len(meta['records'])} frames")
