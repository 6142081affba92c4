"""How visible each held-out lesion is (contrast-to-noise of its inside against
a ring around it, on the model input) and how well the descriptor-trained crop
CNN (pretrain_crop.py) reads its descriptors at the true-mask window, by
visibility band.
    python visibility.py DATA/test CKPT PT_CNN"""
import sys, pathlib, collections
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from umind import data
from crop_reader import load_crop_reader
torch.set_num_threads(2)
split = pathlib.Path(sys.argv[1])
model, crop, heads, vocab, KEYS = load_crop_reader(sys.argv[2], sys.argv[3])
images, primaries, masks, truth, cnr = [], [], [], [], []
for job in [(str(split), r) for r in data.read_records(split) if r["lesions"]]:
    img, mask, primary, _, rec = data.sample_record(job)
    images.append(img); primaries.append(primary)
    les = max(rec["lesions"], key=lambda l: l["area_px"])
    truth.append([vocab[k].index(les["attributes"].get(key) if key not in ("class", "assessment") else les[key]) for k, key in enumerate(KEYS)])
    p = torch.from_numpy(primary.astype(np.float32) / 255)[None, None]
    inside = p[0, 0] > 0.5
    side = float(inside.sum()) ** 0.5
    k = int(np.clip(side * 0.5, 3, 31)) // 2 * 2 + 1
    ring = (F.max_pool2d(p, k, 1, k // 2)[0, 0] > 0.5) & ~(torch.from_numpy(mask) > 0) & torch.from_numpy(img > 0)
    x = torch.from_numpy(img.astype(np.float32))
    if inside.sum() < 4 or ring.sum() < 4:
        cnr.append(0.0); continue
    cnr.append(abs(x[inside].mean() - x[ring].mean()).item() / (x[ring].std().item() + 1e-3))
x = torch.from_numpy(data.normalise(np.stack(images).astype(np.float32))).unsqueeze(1)
w = F.avg_pool2d(torch.from_numpy(np.stack(primaries).astype(np.float32) / 255).unsqueeze(1), 4)
Y = torch.tensor(truth); cnr = np.array(cnr)
with torch.no_grad():
    cx, cy, half = crop.window(w)
    b = len(Y)
    grid = crop.unit_grid * half.view(b, 1, 1, 1) + torch.cat([cx, cy], 1).view(b, 1, 1, 2)
    f = crop.cnn(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)).mean((2, 3))
    preds = [heads[k](f).argmax(1) for k in range(len(KEYS))]
bands = [(0, 0.25), (0.25, 0.5), (0.5, 1.0), (1.0, 99)]
print(f"{b} held-out frames with a lesion; contrast-to-noise |mean inside - mean ring| / std ring on the model input")
print("band        frames  " + "  ".join(f"{k:>14s}" for k in KEYS))
for lo, hi in bands:
    sel = (cnr >= lo) & (cnr < hi)
    cells = []
    for k in range(len(KEYS)):
        p, y = preds[k][sel], Y[sel, k]
        cells.append(f"{(p == y).float().mean().item()*100:14.1f}" if sel.any() else f"{'-':>14s}")
    print(f"{lo:4.2f}-{min(hi, 9):4.2f}  {sel.sum():6d}  " + "  ".join(cells))
print("\nmargin truth by band (frames)")
for lo, hi in bands:
    sel = (cnr >= lo) & (cnr < hi)
    c = collections.Counter(vocab[0][i] for i in Y[sel, 0].tolist())
    print(f"{lo:4.2f}-{min(hi, 9):4.2f}  " + ", ".join(f"{m} {c[m]}" for m in vocab[0]))
print("\necho pattern truth by band (frames)")
for lo, hi in bands:
    sel = (cnr >= lo) & (cnr < hi)
    c = collections.Counter(vocab[1][i] for i in Y[sel, 1].tolist())
    print(f"{lo:4.2f}-{min(hi, 9):4.2f}  " + ", ".join(f"{m} {c[m]}" for m in vocab[1]))
