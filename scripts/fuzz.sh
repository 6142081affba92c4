#!/usr/bin/env bash
# Fuzzing of every parser of outside input (not part of the test suite): the
# property targets of crates/model/tests/parse_props.rs (manifest, ONNX
# reader) and crates/runtime/tests/parse_props.rs (pipeline definitions,
# device profiles), each run on its own for a while instead of CI's 256
# cases. Prints executions and failures per target and exits 1 if any
# target failed; each target's full output is in out/fuzz/TARGET.log.
# Usage: scripts/fuzz.sh [--minutes N (2)] [--seconds N] [--batch N (256)]
#                        [--seed S] [--include-ignored] [FILTER...]
#   --minutes/--seconds  time per target (fresh batches until it is up)
#   --batch              cases per batch (SONOFLOW_FUZZ_CASES)
#   --seed               first batch's seed, to replay a run (default random)
#   --include-ignored    also run the targets ignored for known bugs
#   FILTER               only targets whose name contains one of these words
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
seconds=120; batch=256; seed=""; ignored=""; filters=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --minutes) seconds=$(python3 -c "print(int(float('$2') * 60))"); shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --include-ignored) ignored="--include-ignored"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    *) filters+=("$1"); shift ;;
  esac
done
mkdir -p out/fuzz
summary="out/fuzz/summary.tsv"
printf 'target\ttest\texecutions\tfailures\tseconds\texec_per_s\toutcomes\n' > "$summary"
total_failures=0
for crate in sonoflow-model sonoflow-runtime; do
  echo "[fuzz] building $crate's property tests" >&2
  cargo test -p "$crate" --test parse_props --no-run --quiet 2>&1 | grep -v '^\s*$' >&2 || true
  list() { cargo test -p "$crate" --test parse_props --quiet -- --list "$@" 2>/dev/null | sed -n 's/: test$//p'; }
  tests=$(list)
  known_bugs=$(list --ignored)
  for test in $tests; do
    if [ "${#filters[@]}" -gt 0 ]; then
      keep=0
      for f in "${filters[@]}"; do [[ "$test" == *"$f"* ]] && keep=1; done
      [ "$keep" = 1 ] || continue
    fi
    if [ -z "$ignored" ] && grep -qx "$test" <<< "$known_bugs"; then
      echo "[fuzz] skipping $test (ignored: a known bug; --include-ignored runs it)" >&2
      continue
    fi
    log="out/fuzz/$crate-$test.log"
    echo "[fuzz] $crate $test for ${seconds}s" >&2
    start=$(date +%s.%N)
    status=0
    SONOFLOW_FUZZ_SECONDS="$seconds" SONOFLOW_FUZZ_CASES="$batch" SONOFLOW_FUZZ_SEED="$seed" \
      cargo test -p "$crate" --test parse_props --quiet -- --exact "$test" --nocapture \
      --test-threads 1 $ignored > "$log" 2>&1 || status=$?
    end=$(date +%s.%N)
    # A property target prints one fuzz-stats line; a plain test prints none.
    python3 - "$log" "$crate" "$test" "$status" "$start" "$end" >> "$summary" <<'EOF'
import re, sys
log, crate, test, status, start, end = sys.argv[1:]
text = open(log, errors="replace").read()
m = re.search(r"fuzz-stats target=(\S+) executions=(\d+) failures=(\d+) \S+ \S+ outcomes=(\S*)", text)
elapsed = float(end) - float(start)
if m:
    target, n, f, outcomes = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
else:
    # No stats: a plain test, or a target that died (abort, stack overflow).
    target, n, f, outcomes = "-", 0, 0 if status == "0" else 1, ""
if status != "0" and f == 0:
    f = 1
print(f"{target}\t{crate}::{test}\t{n}\t{f}\t{elapsed:.0f}\t{n / elapsed:.0f}\t{outcomes}")
EOF
    failures=$(tail -n 1 "$summary" | cut -f4)
    total_failures=$((total_failures + failures))
    [ "$failures" = 0 ] || echo "[fuzz] $test FAILED: see $log" >&2
  done
done
echo
column -t -s $'\t' "$summary" | cut -c1-200
echo
echo "fuzz: $total_failures failures (summary in $summary, logs in out/fuzz/)"
[ "$total_failures" = 0 ]
