"""The language model's probabilities for the five margin words, teacher-forced on the
held-out export (analysis only; needs PyTorch and model.diff applied, since it loads the
training checkpoint). Run from onnx/:

    .venv/bin/python ../docs/experiments/2026-12-01-lesion-crop-tokens/probe.py CHECKPOINT TOKENIZER_JSON
"""
import sys, collections, pathlib, numpy as np, torch
sys.path.insert(0, '.')
from tokenizers import Tokenizer
from umind import data, report, train
from umind.model import UMindNano
ck = torch.load(sys.argv[1], map_location='cpu')
model = UMindNano(ck['vocab']); model.load_state_dict(ck['model']); model.eval()
tok = Tokenizer.from_file(sys.argv[2])
images, masks, primary, reports, recs = data.load_split([pathlib.Path('../out/umind-data-v5/test')], pathlib.Path('/tmp/probe-cache'))
ids, pos = train.encode_reports(tok, reports)
words = ["circumscribed", "indistinct", "angular", "microlobulated", "spiculated"]  # report.py's margin words
wid = [tok.token_to_id(w) for w in words]
conf = collections.defaultdict(collections.Counter); probs = collections.defaultdict(list)
with torch.no_grad():
    for s in range(0, len(images), 32):
        idx = np.arange(s, min(s + 32, len(images)))
        x, m = train.batch_tensors(images, masks, idx, None)
        logits = model(x, torch.from_numpy(ids[idx]), torch.from_numpy(pos[idx]))[0]
        for j, i in enumerate(idx):
            row = list(ids[i])
            hit = [k for k, t in enumerate(row) if t in wid]
            if not hit: continue
            k = hit[0]; p = torch.softmax(logits[j, k - 1, wid], -1).numpy()
            truth = words[wid.index(row[k])]
            conf[truth][words[int(p.argmax())]] += 1
            probs[truth].append(p)
for t in words:
    if probs[t]:
        print(f"{t:15s} n={len(probs[t]):3d} argmax {dict(conf[t])}  mean p: " + " ".join(f"{w[:5]}={v:.2f}" for w, v in zip(words, np.mean(probs[t], 0))))
