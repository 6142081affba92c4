"""The crop model's own window (LesionCrop.window on its saliency map) against
the window from the TRUE mask of the lesion the report describes, and the
pretrained crop CNN's descriptor heads read at both, on the held-out frames.
    WINDOW_KERNELS=DEFAULT_KERNELS python window_eval.py DATA/test CKPT PT_CNN DEFAULT_KERNELS

(run from onnx/ with the lesion-crop model.diff and window.diff applied; CKPT the
crop model's checkpoint, PT_CNN pretrain_crop.py's output). Four windows: the
true mask's, the saliency map's (the crop model as trained), the largest part of
the per-frame mask (default kernels), and window.diff's in-graph reconstruction."""
import sys, pathlib
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from umind import data
from crop_reader import load_crop_reader
torch.set_num_threads(2)
split = pathlib.Path(sys.argv[1])
model, crop, heads, vocab, KEYS = load_crop_reader(sys.argv[2], sys.argv[3])
def largest_part(prob):
    """prob [b, 1, 64, 64] -> prob kept only on the largest 4-connected part above 0.5."""
    out = torch.zeros_like(prob)
    for i in range(len(prob)):
        on = (prob[i, 0] > 0.5).numpy(); seen = np.zeros_like(on); best = []
        for y0, x0 in zip(*np.nonzero(on)):
            if seen[y0, x0]: continue
            stack, part = [(y0, x0)], []; seen[y0, x0] = True
            while stack:
                y, x = stack.pop(); part.append((y, x))
                for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                    if 0 <= yy < 64 and 0 <= xx < 64 and on[yy, xx] and not seen[yy, xx]:
                        seen[yy, xx] = True; stack.append((yy, xx))
            if len(part) > len(best): best = part
        for y, x in best: out[i, 0, y, x] = prob[i, 0, y, x]
    return out
jobs = [(str(split), r) for r in data.read_records(split) if r["lesions"]]
images, primaries, truth = [], [], []
for job in jobs:
    img, _, primary, _, rec = data.sample_record(job)
    images.append(img); primaries.append(primary)
    les = max(rec["lesions"], key=lambda l: l["area_px"])
    truth.append([vocab[k].index(les["attributes"].get(key) if key not in ("class", "assessment") else les[key]) for k, key in enumerate(KEYS)])
x = torch.from_numpy(data.normalise(np.stack(images).astype(np.float32))).unsqueeze(1)
w_true = F.avg_pool2d(torch.from_numpy(np.stack(primaries).astype(np.float32) / 255).unsqueeze(1), 4)
Y = torch.tensor(truth)
with torch.no_grad():
    sal = torch.cat([torch.sigmoid(model.encoder.forward_with_saliency(x[i:i + 32])[2]) for i in range(0, len(x), 32)])
    kernels = torch.from_numpy(np.fromfile(sys.argv[4], dtype="<f4").reshape(1, -1, 361)[:, :1])
    feats = torch.cat([model.encoder(x[i:i + 32])[0] for i in range(0, len(x), 32)])
    logits = torch.cat([model.mask_decoder(feats[i:i + 32], kernels.expand(len(feats[i:i + 32]), -1, -1))[0] for i in range(0, len(feats), 32)])
    windows = {"true mask": crop.window(w_true), "saliency (the model's)": crop.window(sal),
               "predicted mask's largest part (default kernels)": crop.window(largest_part(torch.sigmoid(logits))),
               "in-graph reconstruction (mask part at the saliency peak)": crop.window(torch.cat([crop.mask_weights(feats[i:i + 32], sal[i:i + 32]) for i in range(0, len(feats), 32)]))}
    tcx, tcy, th = windows["true mask"]
    print(f"{len(Y)} frames with a lesion.")
    for name, (scx, scy, sh) in list(windows.items())[1:]:
        err = torch.hypot(scx - tcx, scy - tcy) / th
        ratio = sh / th
        print(f"The window from the {name} against the true-mask one: centre off by "
              f"{err.median().item():.2f} of the true half side (median; {(err > 0.5).float().mean().item()*100:.1f} % over 0.5), "
              f"size ratio median {ratio.median().item():.2f} (10-90 %: {ratio.quantile(0.1).item():.2f}-{ratio.quantile(0.9).item():.2f})")
    for name, (cx, cy, half) in windows.items():
        b = len(Y)
        grid = crop.unit_grid * half.view(b, 1, 1, 1) + torch.cat([cx, cy], 1).view(b, 1, 1, 2)
        f = crop.cnn(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)).mean((2, 3))
        parts = []
        for k, key in enumerate(KEYS):
            p = heads[k](f).argmax(1); y = Y[:, k]
            bal = np.mean([((p == c) & (y == c)).sum().item() / (y == c).sum().item() for c in range(len(vocab[k])) if (y == c).any()])
            parts.append(f"{key} {(p == y).float().mean().item()*100:.1f}/{bal*100:.1f}")
        print(f"window from the {name}: " + ", ".join(parts))
