import json, sys, pathlib
R = pathlib.Path(__file__).resolve().parents[3] / 'out' / 'gpu-exp'  # evaluate.sh's output
names = sys.argv[1:]
sets = ['heldout', 'plain', 'look', 'contrast']
def load(n, s):
    p = R / f'{n}-{s}.json'
    return json.loads(p.read_text()) if p.exists() else None
print('| variant | set | Dice | Dice > 0.5 | det P | det R | long MAE mm | short MAE mm | FP/100 lesion-free | recall < 5 mm | recall 5-10 mm | recall 10-20 mm |')
print('|---|---|---|---|---|---|---|---|---|---|---|---|')
for s in sets:
    for n in names:
        d = load(n, s)
        if not d: continue
        o = d['overall']
        fp = o['fp_per_100_empty_frames']
        rs = [b['recall'] for b in o['recall_by_size']]
        f = lambda v: '-' if v is None else f'{v:.3f}'
        print(f"| {n} | {s} | {f(o['dice_mean'])} | {o['dice_gt_0_5']}/{o['dice_frames']} | {f(o['detection_precision'])} | {f(o['detection_recall'])} | {f(o['long_axis_mae_mm'])} | {f(o['short_axis_mae_mm'])} | {f(fp)} | {f(rs[0])} | {f(rs[1])} | {f(rs[2])} |")
print()
print('| variant | ' + ' | '.join(['anechoic','complex_cystic_solid','heterogeneous','hyperechoic','hypoechoic','isoechoic','mixed']) + ' |')
for s in ['heldout', 'look', 'contrast']:
    for n in names:
        d = load(n, s)
        if not d: continue
        e = d['by_echo_pattern']
        print(f'| {n} {s} | ' + ' | '.join(f"{e[k]['dice_mean']:.3f}" if k in e and e[k]['dice_mean'] is not None else '-' for k in ['anechoic','complex_cystic_solid','heterogeneous','hyperechoic','hypoechoic','isoechoic','mixed']) + ' |')
