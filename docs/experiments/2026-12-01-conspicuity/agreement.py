"""How well the Rust conspicuity (an export's truth.jsonl) agrees with crosscheck.py's rows for
the same export: lesions measured by both, by one, the same band, the median difference per band.
    python3 agreement.py EXPORT ROWS.jsonl"""
import json
import statistics
import sys

EDGES = (2, 4, 6, 10)


def band(z):
    return sum(z >= e for e in EDGES)


def main():
    truth = [json.loads(l) for l in open(sys.argv[1] + "/truth.jsonl")]
    python = {(r["line"], r["id"]): r["conspicuity"] for r in map(json.loads, open(sys.argv[2]))}
    pairs, only = [], {"neither": 0, "python only": 0, "rust only": 0}
    for line, rec in enumerate(truth):
        for les in rec["lesions"]:
            a, b = python.get((line, les["id"])), les.get("conspicuity")
            if a is not None and b is not None:
                pairs.append((a, b))
            else:
                only["neither" if a is None and b is None else "python only" if b is None else "rust only"] += 1
    print(f"{len(pairs)} lesions measured by both; {only}")
    print(f"same band (under 2, 2-4, 4-6, 6-10, 10 and over): {sum(band(a) == band(b) for a, b in pairs) / len(pairs):.3f}")
    for lo, hi in zip((0,) + EDGES, EDGES + (float("inf"),)):
        sel = [(a, b) for a, b in pairs if lo <= a < hi]
        if sel:
            print(f"python z {lo}-{hi}: {len(sel)} lesions, median python {statistics.median(a for a, _ in sel):.2f}, "
                  f"rust {statistics.median(b for _, b in sel):.2f}, median |difference| {statistics.median(abs(a - b) for a, b in sel):.2f}")


if __name__ == "__main__":
    main()
