"""Builds train.py's .npz caches with data.load_split, its frames sampled by a process pool."""
import os, pathlib, sys
from multiprocessing import Pool
from umind import data
from umind.train import CACHE, TRAIN_SPLITS

if __name__ == "__main__":
    root = pathlib.Path(sys.argv[1])
    with Pool(int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count()) as pool:
        pooled = lambda f, jobs: pool.map(f, jobs, chunksize=64)
        for name, splits in [(f"train-{CACHE}", TRAIN_SPLITS), (f"val-{CACHE}", ["val"])]:
            images = data.load_split([root / s for s in splits], root / "cache" / name, map=pooled)[0]
            print(name, len(images), flush=True)
