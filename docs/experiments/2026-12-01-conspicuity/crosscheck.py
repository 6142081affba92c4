"""The Python cross-check of crates/phantom/src/conspicuity.rs, written first and independently:
how visible is each lesion of an export in its own frame? A model-free, known-shape test.

For each lesion of a phantom export, two templates are cut from its own mask: the interior and a
band just inside the boundary (the rim, 1.1 mm wide), each against a ring just outside it. The
frame (as written, the grey levels the model sees) is correlated with each template, the lesion's
own placement gives its statistic, and placements of the same shape elsewhere in lesion-free
tissue of the same frame, at about the same depth, give the statistic's spread under speckle and
anatomy alone. z = (lesion - mean of placements) / their standard deviation; conspicuity is the
larger |z| of the two templates. An observer who knows the lesion's exact shape and place cannot
tell it from tissue better than that: a lesion under z of about 3 is a label without an image.

It differs from the Rust in three ways: every pixel placement whose exact footprint lies on tissue
counts (the Rust takes at most 400 on a grid), the placements are found by FFT correlation, and the
lesion's own ring counts skin (the Rust's does not, as no place has any). `agreement.py` compares the two.

    onnx/.venv/bin/python crosscheck.py EXPORT > rows.jsonl
"""
import json
import pathlib
import sys

import numpy as np
from PIL import Image

RIM_MM = 1.1
MIN_PLACEMENTS = 30


def grow(mask, steps):
    """Binary dilation by `steps` with a 3x3 cross (a diamond), no scipy."""
    m = mask.copy()
    for _ in range(steps):
        n = m.copy()
        n[1:, :] |= m[:-1, :]; n[:-1, :] |= m[1:, :]; n[:, 1:] |= m[:, :-1]; n[:, :-1] |= m[:, 1:]
        m = n
    return m


def shrink(mask, steps):
    return ~grow(~mask, steps)


def correlate(frame_f, kernel, shape):
    """Sum of frame * kernel at every top-left placement (valid and wrapped; callers mask)."""
    k = np.zeros(shape, np.float64)
    k[:kernel.shape[0], :kernel.shape[1]] = kernel
    return np.real(np.fft.ifft2(frame_f * np.conj(np.fft.fft2(k))))


def lesion_rows(export):
    export = pathlib.Path(export)
    for line_no, line in enumerate(open(export / 'truth.jsonl')):
        rec = json.loads(line)
        if not rec['lesions']:
            continue
        frame = np.asarray(Image.open(export / rec['image']).convert('L'), dtype=np.float64)
        labels = np.asarray(Image.open(export / rec['labels']))
        shape = frame.shape
        frame_f = np.fft.fft2(frame)
        bad = ((labels < 2) | (labels >= 10)).astype(np.float64)
        bad_f = np.fft.fft2(bad)
        sp = rec['pixel_spacing']['x_mm']
        for les in rec['lesions']:
            m = labels == les['label']
            if m.sum() < 4:
                continue
            ys, xs = np.nonzero(m)
            h = ys.max() - ys.min() + 1; w = xs.max() - xs.min() + 1
            r = max(1.0, 0.5 * min(h, w))
            ring_px = int(max(round(1.0 / sp), round(0.3 * r), 2))
            rim_px = int(max(round(RIM_MM / sp), 1))
            pad = ring_px + 1
            y0 = ys.min() - pad; x0 = xs.min() - pad
            crop = np.zeros((h + 2 * pad, w + 2 * pad), bool)
            cy0, cx0 = max(y0, 0), max(x0, 0)
            sub = m[cy0:y0 + h + 2 * pad, cx0:x0 + w + 2 * pad]
            crop[cy0 - y0:cy0 - y0 + sub.shape[0], cx0 - x0:cx0 - x0 + sub.shape[1]] = sub
            outer = grow(crop, ring_px)
            ring = outer & ~crop
            inner = shrink(crop, rim_px)
            band = crop & ~inner
            if ring.sum() == 0:
                continue
            stats = {}
            templates = {'interior': inner if inner.sum() >= 4 else crop, 'rim': band}
            foot = correlate(bad_f, outer.astype(np.float64), shape)
            free = foot < 0.5
            H, W = shape
            valid = np.zeros(shape, bool)
            valid[:H - outer.shape[0] + 1, :W - outer.shape[1] + 1] = True
            free &= valid
            yy = np.arange(H)[:, None]
            near = np.abs(yy - y0) <= max(h, round(5.0 / sp))
            cand = free & near
            if cand.sum() < MIN_PLACEMENTS:
                cand = free
            n_cand = int(cand.sum())
            for name, t in templates.items():
                if t.sum() < 4:
                    continue
                k = t / t.sum() - ring / ring.sum()
                c = correlate(frame_f, k, shape)
                own = own_statistic(frame, labels, t, ring, y0, x0)
                if n_cand >= MIN_PLACEMENTS:
                    null = c[cand]
                    sd = float(null.std())
                    stats[name] = dict(delta=own, z=(own - float(null.mean())) / sd if sd > 0 else None)
                else:
                    stats[name] = dict(delta=own, z=None)
            zs = [abs(s['z']) for s in stats.values() if s.get('z') is not None]
            row = dict(frame=rec['index'] if 'index' in rec else line_no, line=line_no, id=les['id'],
                       echo=les['attributes']['echo_pattern'], margin=les['attributes']['margin'],
                       klass=les['class'], long_mm=les['long_axis']['length_mm'], long_px=int(max(h, w)),
                       spacing=sp, probe=rec['probe'], placements=n_cand,
                       z_interior=stats.get('interior', {}).get('z'), z_rim=stats.get('rim', {}).get('z'),
                       delta_interior=stats.get('interior', {}).get('delta'), delta_rim=stats.get('rim', {}).get('delta'),
                       conspicuity=max(zs) if zs else None)
            yield row


def own_statistic(frame, labels, template, ring, y0, x0):
    """mean(frame under template) - mean(frame under the ring where it is tissue), at the lesion's place."""
    H, W = frame.shape
    ys, xs = np.nonzero(template)
    ty, tx = ys + y0, xs + x0
    ok = (ty >= 0) & (ty < H) & (tx >= 0) & (tx < W)
    inside = frame[ty[ok], tx[ok]].mean()
    ys, xs = np.nonzero(ring)
    ry, rx = ys + y0, xs + x0
    ok = (ry >= 0) & (ry < H) & (rx >= 0) & (rx < W)
    ry, rx = ry[ok], rx[ok]
    tissue = (labels[ry, rx] >= 1) & (labels[ry, rx] < 10)
    return float(inside - frame[ry[tissue], rx[tissue]].mean())


def main():
    for row in lesion_rows(sys.argv[1]):
        print(json.dumps(row), flush=True)


if __name__ == '__main__':
    main()
