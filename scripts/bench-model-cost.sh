#!/usr/bin/env bash
# The per-frame cost of a model before and after a change, side by side on
# one core in the same run: the bare floor (benches/floor.rs: vision encoder
# + mask decoder on a preloaded input, one intra-op thread, CPU), pinned with
# taskset to one CPU, for BEFORE (the model folder as committed at --before,
# default HEAD) and AFTER (the same folder in the working tree), in
# alternating rounds. Writes --out/summary.json (default out/bench/model-cost)
# with each round's figures, the medians over rounds and AFTER/BEFORE.
# --mirror-after runs AFTER with test-time mirroring ([model]
# mirror_average): with the model unchanged, what the mirroring costs.
# Not part of the test suite.
# Usage: scripts/bench-model-cost.sh [--before REV] [--model DIR] [--rounds N]
#        [--iterations N] [--cpu K] [--out DIR] [--mirror-after]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BEFORE=HEAD MODEL=onnx/umind-nano ROUNDS=5 ITERATIONS=400 CPU=1 OUT=out/bench/model-cost MIRROR_AFTER=off
while [ "$#" -gt 0 ]; do
  case "$1" in
    --before) BEFORE="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --iterations) ITERATIONS="$2"; shift 2 ;;
    --cpu) CPU="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --mirror-after) MIRROR_AFTER=mirror; shift ;;
    *) echo "unknown argument $1 (use --before REV, --model DIR, --rounds N, --iterations N, --cpu K, --out DIR, --mirror-after)" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
bash scripts/bootstrap.sh >/dev/null
source scripts/env.sh
if ! git cat-file -e "$BEFORE:$MODEL/sonoflow-model.toml" 2>/dev/null; then
  echo "bench-model-cost: $MODEL/sonoflow-model.toml is not in git at $BEFORE; pass --before a commit that has the model" >&2
  exit 2
fi
mkdir -p "$OUT"
before_dir="$OUT/before"
rm -rf "$before_dir" && mkdir -p "$before_dir"
git archive "$BEFORE" "$MODEL" | tar -x -C "$before_dir"
cargo bench --locked -p sonoflow-benches --bench floor --no-run --quiet
for round in $(seq 1 "$ROUNDS"); do
  for side in before after; do
    dir=$MODEL mirror=$MIRROR_AFTER
    [ "$side" = before ] && dir="$before_dir/$MODEL" mirror=off
    echo "== round $round/$ROUNDS: $side ($dir$([ "$mirror" = mirror ] && echo ', mirrored too'))"
    taskset -c "$CPU" cargo bench --locked --quiet -p sonoflow-benches --bench floor -- \
      "$dir" "$ITERATIONS" cpu 0 "$OUT/$side-$round.json" "$mirror"
  done
done
python3 - "$OUT" "$ROUNDS" "$BEFORE" "$MODEL" "$CPU" "$MIRROR_AFTER" <<'PY'
import json, pathlib, statistics, subprocess, sys
out, rounds, before, model, cpu, mirror = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
runs = {side: [json.loads((out / f"{side}-{r}.json").read_text()) for r in range(1, rounds + 1)] for side in ("before", "after")}
median = {side: {q: statistics.median(run[q] for run in runs[side]) for q in ("p50", "p99")} for side in runs}
commit = subprocess.run(["git", "rev-parse", "--short", before], capture_output=True, text=True).stdout.strip()
summary = {
    "bench": "cargo bench -p sonoflow-benches --bench floor (vision encoder + mask decoder, 1 intra-op thread), taskset -c " + cpu,
    "model": model, "before_commit": commit,
    "after": "working tree" + (", mirrored too (mirror_average)" if mirror == "mirror" else ""),
    "rounds": runs, "median_ms": median,
    "after_over_before": {q: median["after"][q] / median["before"][q] for q in ("p50", "p99")},
}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
for side in ("before", "after"):
    print(f"{side:<7} encoder+decoder p50 {median[side]['p50']:.2f} ms  p99 {median[side]['p99']:.2f} ms (median of {rounds} rounds)")
r = summary["after_over_before"]
print(f"after/before p50 {r['p50']:.2f}x  p99 {r['p99']:.2f}x")
PY
