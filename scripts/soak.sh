#!/usr/bin/env bash
# Soak test (not part of the test suite): runs a pipeline (default: the
# default pipeline, phantom through umind-nano at 30 fps) for a long time,
# optionally beside a CPU hog, and watches the process for leaks.
#
# Every --interval seconds it samples the sonoflow process's resident memory
# (/proc/PID/status VmRSS), open file descriptors (/proc/PID/fd), threads and
# CPU time into out/soak/samples.csv. At the end it prints the RSS growth per
# hour in the steady state (a least-squares line through the samples from
# --warmup seconds to one interval before the run's end, when it drains),
# the fd and thread counts, and the
# run report's latency p50/p99, drops and errors (out/soak/stats.json); all
# of it also goes to out/soak/summary.json.
#
# Needs the release build (scripts/bootstrap.sh builds it).
# Usage: scripts/soak.sh [--seconds N (3600)] [--hog] [--fps N (30)]
#          [--interval S (10)] [--warmup S (60)] [--no-video] [PIPELINE.toml]
#   --hog       one busy loop per core beside the run (killed at the end)
#   --no-video  a copy of the pipeline with a fake sink instead of its files
#               (an hour of the default pipeline's MP4 is about 1.8 GB)
# Exits 1 when the run fails (sonoflow's exit status or the report's error).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
seconds=3600; hog=0; fps=30; interval=10; warmup=60; video=1
pipeline=pipelines/default.toml
while [ "$#" -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --hog) hog=1; shift ;;
    --fps) fps="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --no-video) video=0; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    *) pipeline="$1"; shift ;;
  esac
done
bin=target/release/sonoflow
if [ ! -x "$bin" ]; then
  echo "[soak] $bin is missing: run scripts/bootstrap.sh (or cargo build --release -p sonoflow) first" >&2
  exit 1
fi
[ -f "$pipeline" ] || { echo "[soak] no pipeline $pipeline" >&2; exit 2; }
out=out/soak
mkdir -p "$out"
if [ "$video" = 0 ]; then
  # The same definition with every [[sinks]] table replaced by one fake sink.
  python3 - "$pipeline" "$out/pipeline.toml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"(?ms)^\[\[sinks\]\].*?(?=^\[|\Z)", "", text)
open(sys.argv[2], "w").write(text.rstrip() + '\n\n[[sinks]]\nkind = "fake"\n')
EOF
  pipeline="$out/pipeline.toml"
fi
frames=$((fps * seconds))
samples="$out/samples.csv"
stats="$out/stats.json"
rm -f "$stats"
echo "t_s,rss_kib,fds,threads,cpu_s" > "$samples"

hogs=()
pid=""
cleanup() {
  for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; done
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -INT "$pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ "$hog" = 1 ]; then
  for _ in $(seq "$(nproc)"); do
    bash -c 'while :; do :; done' &
    hogs+=("$!")
  done
  echo "[soak] CPU hog: ${#hogs[@]} busy loops (pids ${hogs[*]})" >&2
fi

echo "[soak] $bin run $pipeline --frames $frames (${seconds}s at $fps fps), sampling every ${interval}s into $samples" >&2
"$bin" run "$pipeline" --frames "$frames" --stats-json "$stats" --quiet > "$out/sonoflow.log" 2>&1 &
pid=$!
ticks=$(getconf CLK_TCK)
SECONDS=0
next=0
deadline=$((seconds + 300))  # the run's own length plus grace for start-up and draining
while kill -0 "$pid" 2>/dev/null; do
  now=$SECONDS
  if [ "$now" -ge "$next" ] && [ -r "/proc/$pid/status" ]; then
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    cpu=$(awk -v t="$ticks" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$pid/stat" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$now,$rss,$fds,$threads,$cpu" >> "$samples"
    next=$((next + interval))
  fi
  if [ "$now" -ge "$deadline" ]; then
    echo "[soak] still running after ${deadline}s: stopping it (Ctrl-C, then kill)" >&2
    kill -INT "$pid" 2>/dev/null || true
    sleep 20
    kill -KILL "$pid" 2>/dev/null || true
  fi
  sleep 1
done
status=0
wait "$pid" || status=$?
pid=""
cleanup

python3 - "$samples" "$stats" "$out/summary.json" "$warmup" "$status" "$hog" "$seconds" "$interval" <<'EOF'
import json, sys
samples_path, stats_path, summary_path, warmup, status, hog, seconds, interval = sys.argv[1:]
warmup = float(warmup)
# The steady state: after the warm-up, and before the last interval of the
# run's length (the pipeline drains and the process exits after it).
steady_end = float(seconds) - float(interval)
rows = []
with open(samples_path) as f:
    next(f)
    for line in f:
        t, rss, fds, threads, cpu = line.strip().split(",")
        rows.append((float(t), int(rss) / 1024, int(fds), int(threads), float(cpu or 0)))
steady = [r for r in rows if warmup <= r[0] <= steady_end]

def slope_per_hour(points):
    # Least-squares slope of (seconds, value), per hour.
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in points) / var * 3600

summary = {
    "samples": len(rows),
    "steady_samples": len(steady),
    "warmup_s": warmup,
    "hog": hog == "1",
    "exit_status": int(status),
    "rss_mib": {"after_warmup": steady[0][1] if steady else None,
                "steady_end": steady[-1][1] if steady else None,
                "max": max((r[1] for r in rows), default=None)},
    "rss_growth_mib_per_h": slope_per_hour([(r[0], r[1]) for r in steady]),
    "fds": {"after_warmup": steady[0][2] if steady else None,
            "steady_end": steady[-1][2] if steady else None,
            "max": max((r[2] for r in rows), default=None)},
    "fd_growth_per_h": slope_per_hour([(r[0], r[2]) for r in steady]),
    "threads": {"min": min((r[3] for r in rows), default=None),
                "max": max((r[3] for r in rows), default=None)},
}
try:
    report = json.load(open(stats_path))
except (OSError, ValueError) as e:
    report = None
    summary["report_error"] = f"no report: {e}"
if report:
    lat = report.get("latency_ms", {})
    summary.update({
        "frames_in": report.get("frames_in"), "frames_out": report.get("frames_out"),
        "dropped": report.get("dropped"), "fps_out": report.get("fps_out"),
        "duration_s": report.get("duration_s"),
        "latency_ms": {k: lat.get(k) for k in ("p50", "p90", "p99", "max")},
        "model_ms_p99": (report.get("inference") or {}).get("model_ms", {}).get("p99"),
        "passed_without_ai": (report.get("inference") or {}).get("passed_without_ai"),
        "cpu_percent": (report.get("cpu") or {}).get("percent"),
        "max_rss_mib": report.get("max_rss_mib"),
        "allocations_per_frame": report.get("allocations_per_frame"),
        "source_restarts": (report.get("source") or {}).get("restarts"),
        "error": report.get("error"),
    })
json.dump(summary, open(summary_path, "w"), indent=2)

def f(v, fmt="{:.1f}"):
    return "n/a" if v is None else fmt.format(v)
print(f"soak: {len(rows)} samples, {len(steady)} in the steady state ({warmup:.0f} s to {steady_end:.0f} s), "
      f"hog {'on' if hog == '1' else 'off'}, exit {status}")
print(f"  RSS: {f(summary['rss_mib']['after_warmup'])} MiB after warm-up, {f(summary['rss_mib']['steady_end'])} MiB at "
      f"{steady_end:.0f} s, max {f(summary['rss_mib']['max'])} MiB; growth {f(summary['rss_growth_mib_per_h'], '{:+.2f}')} MiB/h")
print(f"  fds: {summary['fds']['after_warmup']} after warm-up, {summary['fds']['steady_end']} at {steady_end:.0f} s "
      f"(growth {f(summary['fd_growth_per_h'], '{:+.1f}')}/h); threads {summary['threads']['min']}..{summary['threads']['max']}")
if report:
    lat = summary["latency_ms"]
    print(f"  frames {summary['frames_in']} in, {summary['frames_out']} out ({f(summary['fps_out'])} fps), dropped {summary['dropped']}")
    print(f"  latency p50 {f(lat['p50'], '{:.2f}')} ms, p99 {f(lat['p99'], '{:.2f}')} ms, max {f(lat['max'], '{:.2f}')} ms; "
          f"model p99 {f(summary['model_ms_p99'], '{:.2f}')} ms; cpu {f(summary['cpu_percent'])} %; error {summary['error']}")
else:
    print(f"  {summary['report_error']}")
print(f"  details: {summary_path}")
EOF
if [ "$status" != 0 ]; then
  echo "[soak] sonoflow exited $status (log: $out/sonoflow.log)" >&2
  exit 1
fi
if python3 -c "import json,sys; sys.exit(0 if json.load(open('$stats')).get('error') is None else 1)"; then
  exit 0
fi
echo "[soak] the report has an error (see $stats)" >&2
exit 1
