"""Contact sheet of held-out isoechoic lesions the model did not touch (no finding box overlaps
them), first frame of each sequence: each crop as rendered, then with the true box in red.
    python3 isoechoic_missed.py out/gpu-exp/heldout findings.jsonl isoechoic-missed.jpg"""
import json, pathlib, sys
import numpy as np
from PIL import Image, ImageDraw

from misses import best_overlap

truth_dir = pathlib.Path(sys.argv[1])
recs = [json.loads(l) for l in open(truth_dir / 'truth.jsonl')]
outs = [json.loads(l) for l in open(sys.argv[2])]

tiles = []
for r, o in zip(recs, outs):
    for l in r['lesions']:
        b = l['bbox']
        if l['attributes']['echo_pattern'] != 'isoechoic' or r['frame_in_sequence'] != 0 or best_overlap(b, o) > 0:
            continue
        img = Image.open(truth_dir / r['image']).convert('L')
        pad = max(20, int(max(b['x1'] - b['x0'], b['y1'] - b['y0']) * 1.5))
        cx, cy = (b['x0'] + b['x1']) / 2, (b['y0'] + b['y1']) / 2
        crop = img.crop((int(cx - pad), int(cy - pad), int(cx + pad), int(cy + pad))).resize((160, 160))
        boxed = crop.convert('RGB'); s = 160 / (2 * pad)
        ImageDraw.Draw(boxed).rectangle([(b['x0'] - cx + pad) * s, (b['y0'] - cy + pad) * s, (b['x1'] - cx + pad) * s, (b['y1'] - cy + pad) * s], outline=(255, 0, 0))
        tiles.append(np.concatenate([np.asarray(crop.convert('RGB')), np.asarray(boxed)], 1))
tiles = tiles[:12]
grid = np.concatenate([np.concatenate(tiles[i:i + 2], 1) for i in range(0, len(tiles) - len(tiles) % 2, 2)], 0)
Image.fromarray(grid).save(sys.argv[3], quality=85)
print(f'{len(tiles)} lesions -> {sys.argv[3]}')
