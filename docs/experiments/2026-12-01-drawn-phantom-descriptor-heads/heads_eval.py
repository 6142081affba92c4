"""Held-out accuracy of the training-only descriptor heads on the region
tokens, on every frame with a lesion (the largest, as the report describes).
From the repository root with code.diff applied:

    onnx/.venv/bin/python docs/experiments/2026-12-01-drawn-phantom-descriptor-heads/heads_eval.py \
        out/umind-train/checkpoint.pt out/umind-data-v10/test
"""
import json, sys, pathlib
import numpy as np, torch
sys.path.insert(0, 'onnx')
from umind import data, report
from umind.model import UMindNano

ckpt = torch.load(sys.argv[1], map_location='cpu')
model = UMindNano(ckpt['vocab']); model.load_state_dict(ckpt['model']); model.eval()
torch.set_num_threads(2)
images, masks, primary, reports, records = data.load_split([pathlib.Path(sys.argv[2])], pathlib.Path(sys.argv[2]).parent / 'cache' / 'test-heads')
fields = report.descriptor_fields()
right = {f: 0 for f in fields}; n = 0
margins = report.ATTRIBUTES['margin']
conf = np.zeros((len(margins), len(margins)), int)
with torch.no_grad():
    for s in range(0, len(images), 32):
        x = torch.from_numpy(data.normalise(images[s:s+32].astype(np.float32))).unsqueeze(1)
        _, tokens = model.encoder(x)
        out = model.descriptors(tokens)
        for i, rec in enumerate(records[s:s+32]):
            lab = report.descriptor_labels(rec['lesions'])
            if lab['class'] < 0: continue
            n += 1
            for f in fields:
                right[f] += int(out[f][i].argmax()) == lab[f]
            conf[lab['margin'], int(out['margin'][i].argmax())] += 1
print(json.dumps({'frames': n, **{f: round(right[f] / n, 3) for f in fields}}))
print('margin confusion (rows truth, cols heads):', margins)
print(conf)
