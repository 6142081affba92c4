#!/usr/bin/env python3
"""The pipeline against the bare-inference floor, round by round.

scripts/bench.sh runs, in each round and one right after the other, the Rust
floor paced at 30 fps (floor-paced-N.json), the raw pipeline
(umind-raw-N.json: preprocess + encoder + decoder, nothing after) and the
whole product (umind-N.json: findings, overlay, reasoning head), and one more
floor after the last round. On a shared machine (a VM beside others) the
speed drifts by 10-30 % from one half-minute to the next, so a ratio of two
runs minutes apart means little: each round's runs are set against the mean
of the floors just before and just after them, and the median over rounds is
the figure to quote.

Prints a markdown table per round and the medians, and writes them to
DIR/ratios.json. Usage: python3 benches/ratios.py DIR ROUNDS
"""
import json
import statistics
import sys
from pathlib import Path


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        sys.exit(f"{path}: {err} (did its bench run finish?)")


def row(name, figures, floor):
    ratio = {q: figures[q] / floor[q] for q in ("p50", "p99")}
    return name, figures, ratio


def main():
    out, rounds = Path(sys.argv[1]), int(sys.argv[2])
    per_round = []
    for n in range(1, rounds + 1):
        before, after = load(out / f"floor-paced-{n}.json"), load(out / f"floor-paced-{n + 1}.json")
        floor = {q: (before[q] + after[q]) / 2 for q in ("p50", "p99", "max")}
        raw = load(out / f"umind-raw-{n}.json")
        full = load(out / f"umind-{n}.json")
        per_round.append(
            {
                "floor": floor,
                "rows": [
                    row("raw pipeline, preprocess + encoder + decoder (inference.model_ms)", raw["inference"]["model_ms"], floor),
                    row("raw pipeline, end to end (latency_ms)", raw["latency_ms"], floor),
                    row("whole product, preprocess + encoder + decoder (inference.model_ms)", full["inference"]["model_ms"], floor),
                    row("whole product, end to end (latency_ms)", full["latency_ms"], floor),
                ],
                "allocations_per_frame": [raw["allocations_per_frame"], full["allocations_per_frame"]],
                "dropped": [sum(raw["dropped"].values()), sum(full["dropped"].values())],
            }
        )
    summary = {"rounds": rounds, "rows": {}}
    for n, r in enumerate(per_round, 1):
        f = r["floor"]
        print(f"\nround {n}: floor (Rust ort, paced at 30 fps; mean of the runs before and after) p50 {f['p50']:.2f} ms, p99 {f['p99']:.2f} ms, max {f['max']:.2f} ms")
        print("| | p50 | p99 | max | p50 / floor | p99 / floor |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, fig, ratio in r["rows"]:
            print(f"| {name} | {fig['p50']:.2f} ms | {fig['p99']:.2f} ms | {fig['max']:.2f} ms | {ratio['p50']:.3f} | {ratio['p99']:.3f} |")
            summary["rows"].setdefault(name, {"p50": [], "p99": []})
            for q in ("p50", "p99"):
                summary["rows"][name][q].append(ratio[q])
        print(f"allocations per frame (raw, whole): {r['allocations_per_frame']}; dropped (raw, whole): {r['dropped']}")
    print(f"\nmedian over {rounds} rounds (goal: p50 within 5 %, p99 within 15 % of the floor)")
    print("| | p50 / floor | p99 / floor |")
    print("| --- | --- | --- |")
    for name, ratios in summary["rows"].items():
        ratios["median_p50"] = statistics.median(ratios["p50"])
        ratios["median_p99"] = statistics.median(ratios["p99"])
        print(f"| {name} | {ratios['median_p50']:.3f} | {ratios['median_p99']:.3f} |")
    (out / "ratios.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
