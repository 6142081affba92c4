"""Detection recall a searching observer could reach at most on phantom exports, from the
conspicuity sonoflow's phantom export records for each lesion (truth.jsonl, `conspicuity`).

The observer knows each lesion's exact shape and size and searches the frame only for that one
shape, so its threshold is the lowest any searcher could use: noise alone passes it at alpha / (2 N)
per place (either sign), N = the frame's tissue area / the lesion's area (independent places) and
alpha = false findings per frame (0.02 is issue 18's 2 per 100 lesion-free frames). The frame's own
noise is already in z, so it finds a lesion when z > t. Lesions without a conspicuity (too little
tissue in the frame to compare with) are counted as found.

    python3 bound.py EXPORT [EXPORT ...]
"""
import json
import pathlib
import statistics
import sys

ALPHAS = (0.02, 0.10)


def tissue_area(region):
    """Pixels of the image region (0.8 of a rectangle's or fan's, for the skin and the edges)."""
    if region["kind"] == "rect":
        return 0.8 * (region["x1"] - region["x0"]) * (region["y1"] - region["y0"])
    return 0.8 * region["half_angle"] * (region["r1"] ** 2 - region["r0"] ** 2)


def main():
    lesions = []
    for export in sys.argv[1:]:
        for line in open(pathlib.Path(export) / "truth.jsonl"):
            rec = json.loads(line)
            for les in rec["lesions"]:
                places = max(1.0, tissue_area(rec["region"]) / max(1, les["area_px"]))
                lesions.append((les.get("conspicuity"), places, les["attributes"].get("echo_pattern", "-")))
    normal = statistics.NormalDist()
    unmeasured = sum(z is None for z, _, _ in lesions)
    print(f"{len(lesions)} lesions, {unmeasured} without a conspicuity (counted as found)")
    for alpha in ALPHAS:
        found = {}
        for z, places, echo in lesions:
            t = normal.inv_cdf(1 - alpha / (2 * places))
            found.setdefault(echo, []).append(1.0 if z is None else float(z > t))
        every = [f for v in found.values() for f in v]
        per = ", ".join(f"{k} {sum(v) / len(v):.2f}" for k, v in sorted(found.items()))
        print(f"at {alpha * 100:g} false findings per 100 frames: recall at most {sum(every) / len(every):.3f} ({per})")


if __name__ == "__main__":
    main()
