"""The crop-token margin classifier of supervised.diff, and the language model's margin
probabilities, on the held-out export (analysis only; needs PyTorch, model.diff and
supervised.diff applied). Run from onnx/: .venv/bin/python PATH/auxeval.py CHECKPOINT TOKENIZER_JSON
"""
import sys, collections, pathlib, numpy as np, torch
sys.path.insert(0, '.')
from tokenizers import Tokenizer
from umind import data, report, train
from umind.model import UMindNano, GRID_TOKENS, ROI_TOKENS, D_MODEL
ck = torch.load(sys.argv[1], map_location='cpu')
model = UMindNano(ck['vocab']); model.margin_head = torch.nn.Linear(D_MODEL, 5)
model.load_state_dict(ck['model']); model.eval()
tok = Tokenizer.from_file(sys.argv[2])
images, masks, primary, reports, recs = data.load_split([pathlib.Path('../out/umind-data-v5/test')], pathlib.Path('/tmp/probe-cache'))
ids, pos = train.encode_reports(tok, reports)
words = train.MARGINS
wid = [tok.token_to_id(w) for w in words]
lm = collections.defaultdict(collections.Counter); head = collections.defaultdict(collections.Counter); probs = collections.defaultdict(list)
with torch.no_grad():
    for s in range(0, len(images), 32):
        idx = np.arange(s, min(s + 32, len(images)))
        x, m = train.batch_tensors(images, masks, idx, None)
        out = model(x, torch.from_numpy(ids[idx]), torch.from_numpy(pos[idx]))
        logits, tokens = out[0], out[-1]
        hp = model.margin_head(tokens[:, GRID_TOKENS + ROI_TOKENS:].mean(1)).argmax(-1)
        for j, i in enumerate(idx):
            row = list(ids[i]); hit = [k for k, t in enumerate(row) if t in wid]
            if not hit: continue
            k = hit[0]; p = torch.softmax(logits[j, k - 1, wid], -1).numpy()
            truth = words[wid.index(row[k])]
            lm[truth][words[int(p.argmax())]] += 1; head[truth][words[int(hp[j])]] += 1; probs[truth].append(p)
print("truth: LM argmax | crop-token classifier argmax | LM mean p")
for t in words:
    print(f"{t:15s} n={len(probs[t]):3d} LM {dict(lm[t])} | head {dict(head[t])} | " + " ".join(f"{w[:5]}={v:.2f}" for w, v in zip(words, np.mean(probs[t], 0))))
acc = sum(head[t][t] for t in words) / sum(sum(head[t].values()) for t in words)
bal = np.mean([head[t][t] / max(1, sum(head[t].values())) for t in words])
print(f"crop-token classifier: accuracy {acc:.3f}, balanced accuracy {bal:.3f}")
