"""Standalone descriptor classifiers on crops cut around the TRUE lesion box
(no LM, no segmentation): can the phantom's descriptors be told apart at all?

    onnx/.venv/bin/python crops.py out/umind-data-v5        # full resolution (crops-full-resolution.log)
    DOWN=3 onnx/.venv/bin/python crops.py out/umind-data-v5 # the frame shrunk 3x first (crops-third-resolution.log)

Every lesion of the export's train split (a window twice its box, resampled to
64x64) trains one small CNN with a class-balanced head per descriptor, 6 epochs;
each epoch prints accuracy/balanced accuracy (mean recall over the classes) on
every lesion of the test split. JITTER=0.15 moves and scales the windows
(lognormal); SAVE=PATH keeps the network; BALANCED=0 trains with plain
cross-entropy (crops-plain-loss.log), which serves plain accuracy. The last
lines give the margin's accuracy by the lesion's long axis (the logs before
crops-detail-floors.log end at the confusion matrix). (The full-resolution log was made
with integer crop bounds; the script now cuts an exact extent.)"""
import json, sys, os, time
import numpy as np
from PIL import Image
import torch, torch.nn as nn, torch.nn.functional as F

torch.set_num_threads(2)
ROOT = sys.argv[1]
SIZE = 64
DOWN = float(os.environ.get("DOWN", "1"))
JITTER = float(os.environ.get("JITTER", "0"))
BALANCED = os.environ.get("BALANCED", "1") != "0"  # BALANCED=0: plain cross-entropy
rng = np.random.default_rng(0)
KEYS = ["margin", "echo_pattern", "shape", "orientation", "posterior", "calcifications", "class", "assessment"]

def load(split, scale=2.0):
    xs, ys, sizes = [], [], []
    for line in open(os.path.join(ROOT, split, "truth.jsonl")):
        t = json.loads(line)
        if not t["lesions"]:
            continue
        im = None
        for les in t["lesions"]:
            b = les["bbox"]
            cx, cy = (b["x0"] + b["x1"]) / 2, (b["y0"] + b["y1"]) / 2
            half = max(b["x1"] - b["x0"], b["y1"] - b["y0"], 8) * scale / 2
            if JITTER:
                w = max(b["x1"] - b["x0"], b["y1"] - b["y0"], 8)
                cx += rng.normal(0, JITTER * w); cy += rng.normal(0, JITTER * w)
                half *= float(np.exp(rng.normal(0, JITTER)))
            if im is None:
                im = Image.open(os.path.join(ROOT, split, t["image"])).convert("L")
                if DOWN > 1:
                    im = im.resize((round(im.width / DOWN), round(im.height / DOWN)), Image.BILINEAR)
            cx, cy, half = cx / DOWN, cy / DOWN, half / DOWN
            crop = im.transform((SIZE, SIZE), Image.EXTENT, (cx - half, cy - half, cx + half, cy + half), Image.BILINEAR)
            xs.append(np.asarray(crop, dtype=np.uint8))
            a = les["attributes"]
            ys.append([a.get(k) if k not in ("class", "assessment") else les[k] for k in KEYS])
            sizes.append(les["long_axis"]["length_mm"])
    return np.stack(xs), ys, np.array(sizes)

t0 = time.time()
scale = float(os.environ.get("SCALE", "2.0"))
xtr, ytr, _ = load("train", scale)
xte, yte, size_te = load("test", scale)
print(f"crops train {len(xtr)} test {len(xte)} in {time.time()-t0:.0f}s", flush=True)
vocab = [sorted({y[i] for y in ytr + yte}) for i in range(len(KEYS))]
def enc(ys):
    return torch.tensor([[vocab[i].index(y[i]) for i in range(len(KEYS))] for y in ys])
Ytr, Yte = enc(ytr), enc(yte)
Xtr = torch.tensor(xtr).float().div(255).unsqueeze(1)
Xte = torch.tensor(xte).float().div(255).unsqueeze(1)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        c = [1, 32, 64, 96, 128]
        self.convs = nn.ModuleList(nn.Sequential(nn.Conv2d(c[i], c[i+1], 3, padding=1), nn.BatchNorm2d(c[i+1]), nn.ReLU(),
                                                  nn.Conv2d(c[i+1], c[i+1], 3, padding=1), nn.BatchNorm2d(c[i+1]), nn.ReLU()) for i in range(4))
        self.heads = nn.ModuleList(nn.Linear(128, len(v)) for v in vocab)
    def forward(self, x):
        for i, c in enumerate(self.convs):
            x = c(x)
            if i < 3: x = F.max_pool2d(x, 2)
        x = x.mean((2, 3))
        return [h(x) for h in self.heads]

torch.manual_seed(0)
net = Net()
weights = []
for i in range(len(KEYS)):
    cnt = torch.bincount(Ytr[:, i], minlength=len(vocab[i])).float().clamp(min=1)
    weights.append((cnt.sum() / cnt / len(vocab[i])) if BALANCED else None)
opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
epochs = int(os.environ.get("EPOCHS", "6"))
steps = epochs * (len(Xtr) // 64)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
def evaluate():
    net.eval(); outs = [[] for _ in KEYS]
    with torch.no_grad():
        for i in range(0, len(Xte), 256):
            for k, o in enumerate(net(Xte[i:i+256])): outs[k].append(o.argmax(1))
    net.train()
    res = {}
    for k, name in enumerate(KEYS):
        p = torch.cat(outs[k]); y = Yte[:, k]
        acc = (p == y).float().mean().item()
        recalls = [((p == c) & (y == c)).sum().item() / max((y == c).sum().item(), 1) for c in range(len(vocab[k])) if (y == c).any()]
        res[name] = (acc, float(np.mean(recalls)))
        if name == "margin":
            cm = np.zeros((len(vocab[k]),) * 2, int)
            for a, b in zip(y.tolist(), p.tolist()): cm[a, b] += 1
            res["margin_cm"] = cm
            res["margin_right"] = (p == y).numpy()
    return res
step = 0
for ep in range(epochs):
    perm = torch.randperm(len(Xtr))
    for i in range(0, len(perm) - 63, 64):
        idx = perm[i:i+64]
        x = Xtr[idx]
        if torch.rand(()) < 0.5: x = x.flip(3)
        x = x * (0.7 + 0.6 * torch.rand(len(x), 1, 1, 1)) + 0.1 * (torch.rand(len(x), 1, 1, 1) - 0.5)
        outs = net(x)
        loss = sum(F.cross_entropy(o, Ytr[idx, k], weight=weights[k]) for k, o in enumerate(outs))
        opt.zero_grad(); loss.backward(); opt.step(); sched.step(); step += 1
    r = evaluate()
    print(f"epoch {ep} {time.time()-t0:.0f}s loss {loss.item():.3f} " + " ".join(f"{k}={r[k][0]*100:.1f}/{r[k][1]*100:.1f}" for k in KEYS), flush=True)
print("vocab margin", vocab[0]); print(r["margin_cm"])
for lo, hi in [(0, 6), (6, 10), (10, 15), (15, 99)]:
    band = (size_te >= lo) & (size_te < hi)
    irregular = band & np.array([y[0] not in ("circumscribed", "microlobulated") for y in yte])
    print(f"margin, long axis {lo}-{hi} mm: {r['margin_right'][band].mean()*100:.1f} % of {band.sum()}"
          f" (angular, indistinct, spiculated: {r['margin_right'][irregular].mean()*100:.1f} % of {irregular.sum()})")
if os.environ.get("SAVE"):
    torch.save({"state": net.state_dict(), "vocab": vocab, "keys": KEYS}, os.environ["SAVE"])
