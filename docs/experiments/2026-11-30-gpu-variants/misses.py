"""Per held-out lesion: found (a finding box at IoU >= 0.5, as sonoflow eval matches), overlapped
but under 0.5, or untouched; grouped by size in pixels and mm, drawn contrast, echo pattern and pixel
spacing.   python3 misses.py out/gpu-exp/heldout findings.jsonl"""
import collections
import json
import pathlib
import sys


def iou(a, b):
    """IoU of two boxes {x0, y0, x1, y1}."""
    ix = max(0, min(a['x1'], b['x1']) - max(a['x0'], b['x0'])); iy = max(0, min(a['y1'], b['y1']) - max(a['y0'], b['y0']))
    i = ix * iy; u = (a['x1']-a['x0'])*(a['y1']-a['y0']) + (b['x1']-b['x0'])*(b['y1']-b['y0']) - i
    return i / u if u > 0 else 0


def best_overlap(box, frame):
    """The best IoU of `box` with any finding box of one --findings-jsonl line (0 when none)."""
    return max([iou(box, f['box']) for f in frame.get('findings', []) if 'box' in f], default=0)


def main():
    truth_dir = sys.argv[1]  # evaluate.sh's out/gpu-exp/heldout
    recs = [json.loads(l) for l in open(truth_dir + '/truth.jsonl')]
    outs = [json.loads(l) for l in open(sys.argv[2])]  # sonoflow eval --findings-jsonl over it
    assert len(recs) == len(outs)
    # contrast per lesion from the manifests
    contrast = {}
    for e in sorted(pathlib.Path(truth_dir).glob('e*')):
        m = json.load(open(e / 'manifest.json'))
        for s in m['sequences']:
            for l in s.get('lesions', []):
                for fi in range(s['first_frame'], s['first_frame'] + s['frames']):
                    contrast[(str(e.resolve()), fi, l['id'])] = l['contrast_db']
    rows = []
    for r, o in zip(recs, outs):
        exp = str(pathlib.Path(truth_dir, r['image'].split('/')[0]).resolve())
        for l in r['lesions']:
            b = l['bbox']
            px = max(b['x1'] - b['x0'], b['y1'] - b['y0'])
            rows.append(dict(best=best_overlap(b, o), mm=l['long_axis']['length_mm'], px=px, echo=l['attributes']['echo_pattern'],
                             c=contrast.get((exp, r['index'], l['id'])), sp=r['pixel_spacing']['x_mm']))

    def summary(key, fn):
        g = collections.defaultdict(lambda: [0, 0, 0])
        for x in rows:
            k = fn(x); g[k][0] += 1; g[k][1] += x['best'] >= 0.5; g[k][2] += 0 < x['best'] < 0.5
        print(f'-- {key}: lesions, found (IoU>=.5), overlapped but IoU<.5, untouched')
        for k in sorted(g, key=lambda k: str(k)):
            n, f, p = g[k]; print(f'{str(k):>22} {n:4d} {f/n:6.2f} {p/n:6.2f} {(n-f-p)/n:6.2f}')

    summary('native px of long side', lambda x: '<10' if x['px'] < 10 else '10-20' if x['px'] < 20 else '20-40' if x['px'] < 40 else '>=40')
    summary('mm', lambda x: '<5' if x['mm'] < 5 else '5-10' if x['mm'] < 10 else '>=10')
    summary('contrast dB', lambda x: 'none' if x['c'] is None else '<-20' if x['c'] < -20 else '-20..-6' if x['c'] < -6 else '-6..+3' if x['c'] < 3 else '>=3')
    summary('echo', lambda x: x['echo'])
    summary('mm spacing', lambda x: f"{min(x['sp'], 0.3):.1f}")


if __name__ == '__main__':
    main()
