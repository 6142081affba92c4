"""Builds train.py's .npz caches (as data.load_split writes them) with a process pool."""
import json, os, pathlib, sys
from multiprocessing import Pool
import numpy as np
from PIL import Image
from umind import data, report
from umind.train import CACHE, TRAIN_SPLITS

def one(job):
    export_dir, rec = job
    export_dir = pathlib.Path(export_dir)
    frame = np.asarray(Image.open(export_dir / rec["image"]), dtype=np.float32)
    labels = np.asarray(Image.open(export_dir / rec["labels"]))
    plan = data.ResizePlan(frame.shape[1], frame.shape[0], rec["region"])
    img = np.nan_to_num(plan.sample(frame), nan=data.PAD_VALUE).round().clip(0, 255).astype(np.uint8)
    lesion = (labels >= 10).astype(np.float32)
    mask = (np.nan_to_num(plan.sample(lesion), nan=0.0) * 255).round().astype(np.uint8)
    largest = max(rec["lesions"], key=lambda l: l["area_px"])["label"] if rec["lesions"] else -1
    prim = (np.nan_to_num(plan.sample((labels == largest).astype(np.float32)), nan=0.0) * 255).round().astype(np.uint8)
    return img, mask, prim, report.for_lesions(rec["lesions"]), dict(rec, export=str(export_dir))

def build(root, splits, name, pool):
    jobs = [(str(root / s), rec) for s in splits for rec in data.read_records(root / s)]
    out = pool.map(one, jobs, chunksize=64)
    cache = root / "cache" / name
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache.with_suffix(".npz"), images=np.stack([o[0] for o in out]), masks=np.stack([o[1] for o in out]), primary=np.stack([o[2] for o in out]))
    cache.with_suffix(".json").write_text(json.dumps({"reports": [o[3] for o in out], "records": [o[4] for o in out]}))
    print(name, len(out), flush=True)

if __name__ == "__main__":
    root = pathlib.Path(sys.argv[1])
    with Pool(int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count()) as pool:
        build(root, TRAIN_SPLITS, f"train-{CACHE}", pool)
        build(root, ["val"], f"val-{CACHE}", pool)
