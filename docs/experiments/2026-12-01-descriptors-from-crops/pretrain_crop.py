"""Pretrains LesionCrop's CNN on the descriptors directly: windows from the
TRUE mask of the lesion the report describes (LesionCrop.window's own formula,
jittered), crops of the model input, class-balanced heads per descriptor.
    python pretrain_crop.py DATA CKPT_IN OUT_CNN STEPS"""
import sys, json, time, pathlib
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from umind import data
from umind.model import UMindNano, D_MODEL
from umind.train import CACHE, TRAIN_SPLITS
torch.manual_seed(0); torch.set_num_threads(2)
root = pathlib.Path(sys.argv[1]); ck = torch.load(sys.argv[2], map_location="cpu"); out = sys.argv[3]; steps = int(sys.argv[4])
KEYS = ["margin", "echo_pattern", "shape", "orientation", "posterior", "calcifications", "class", "assessment"]
def load(split, cache):
    images, _, primary, _, records = data.load_split([root / s for s in split], root / "cache" / cache)
    keep = [i for i, r in enumerate(records) if r["lesions"]]
    y = []
    for i in keep:
        les = max(records[i]["lesions"], key=lambda l: l["area_px"])
        y.append([les["attributes"].get(k) if k not in ("class", "assessment") else les[k] for k in KEYS])
    return images[keep], primary[keep], y
xi, xp, ytr = load(TRAIN_SPLITS, f"train-{CACHE}")
vi, vp, yva = load(["val"], f"val-{CACHE}")
vocab = [sorted({y[k] for y in ytr + yva}) for k in range(len(KEYS))]
enc = lambda ys: torch.tensor([[vocab[k].index(y[k]) for k in range(len(KEYS))] for y in ys])
Ytr, Yva = enc(ytr), enc(yva)
print(f"train {len(Ytr)} val {len(Yva)}", flush=True)
model = UMindNano(ck["vocab"]); model.load_state_dict(ck["model"])
crop = model.encoder.crop
heads = nn.ModuleList(nn.Linear(96, len(v)) for v in vocab)
weights = [(lambda c: c.sum() / c / len(c))(torch.bincount(Ytr[:, k], minlength=len(vocab[k])).float().clamp(min=1)) for k in range(len(KEYS))]

def crops(images, primary, idx, jitter, flip=None):
    x = torch.from_numpy(data.normalise(images[idx].astype(np.float32))).unsqueeze(1)
    w = F.avg_pool2d(torch.from_numpy(primary[idx].astype(np.float32) / 255).unsqueeze(1), 4)
    cx, cy, half = crop.window(w)
    if jitter:
        cx = cx + torch.randn_like(cx) * 0.1 * half
        cy = cy + torch.randn_like(cy) * 0.1 * half
        half = half * torch.exp(torch.randn_like(half) * 0.15)
    b = len(idx)
    grid = crop.unit_grid * half.view(b, 1, 1, 1) + torch.cat([cx, cy], 1).view(b, 1, 1, 2)
    c = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return c.flip(-1) if flip else c

def features(c):
    return crop.cnn(c).mean((2, 3))

params = list(crop.cnn.parameters()) + list(heads.parameters())
opt = torch.optim.AdamW(params, 2e-3, weight_decay=1e-4)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
t0 = time.time()
def evaluate():
    crop.eval(); outs = [[] for _ in KEYS]
    with torch.no_grad():
        for i in range(0, len(Yva), 128):
            idx = np.arange(i, min(i + 128, len(Yva)))
            f = features(crops(vi, vp, idx, False))
            for k, h in enumerate(heads): outs[k].append(h(f).argmax(1))
    crop.train()
    res = []
    for k, key in enumerate(KEYS):
        p = torch.cat(outs[k]); y = Yva[:, k]
        bal = np.mean([((p == c) & (y == c)).sum().item() / (y == c).sum().item() for c in range(len(vocab[k])) if (y == c).any()])
        res.append(f"{key}={(p == y).float().mean().item()*100:.1f}/{bal*100:.1f}")
    return " ".join(res)
crop.train()
for step in range(1, steps + 1):
    idx = np.random.randint(0, len(Ytr), 64)
    c = crops(xi, xp, idx, True, flip=bool(np.random.rand() < 0.5))
    f = features(c)
    loss = sum(F.cross_entropy(h(f), Ytr[idx, k], weight=weights[k]) for k, h in enumerate(heads))
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    if step % 250 == 0 or step == steps:
        print(f"step {step} {time.time()-t0:.0f}s loss {loss.item():.3f} val {evaluate()}", flush=True)
torch.save({"cnn": crop.cnn.state_dict(), "heads": heads.state_dict(), "vocab": vocab, "keys": KEYS}, out)
