#!/usr/bin/env bash
# The PACS path's figures (not part of the test suite; for docs/dicom.md):
# the default phantom pipeline (reasoning head on) with a fake video sink and
# a `pacs` sink sending to Debian's Orthanc on loopback.
#  1. Orthanc up throughout: objects per stored keyframe and their sizes,
#     keyframe capture to PACS acknowledgement p50/p99.
#  2. Orthanc killed 10 s into the run and started again OUTAGE s later (the
#     same storage): every object spooled meanwhile reaches it, in order,
#     none twice (the sender's `sent` equals the objects stored, and Orthanc
#     holds that many instances), none left in the spool.
# Reports land in out/bench/pacs/. Usage: scripts/bench-pacs.sh [--seconds 60] [--outage 30]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
seconds=60; outage=30
while [ "$#" -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --outage) outage="$2"; shift 2 ;;
    *) echo "unknown argument $1 (use --seconds N, --outage N)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1;34m[bench-pacs]\033[0m %s\n' "$*" >&2; }
OUT="$ROOT/out/bench/pacs"
rm -rf "$OUT"; mkdir -p "$OUT"
cargo build --release --locked -q -p sonoflow
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP="$(port)"; DICOM="$(port)"
cat > "$OUT/orthanc.json" <<JSON
{"Name": "sonoflow-bench", "StorageDirectory": "$OUT/orthanc", "IndexDirectory": "$OUT/orthanc",
 "HttpPort": $HTTP, "DicomPort": $DICOM, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
 "AuthenticationEnabled": false, "DicomCheckCalledAet": true}
JSON
orthanc=""
orthanc_up() {
  Orthanc "$OUT/orthanc.json" > "$OUT/orthanc.log" 2>&1 & orthanc=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/system" > /dev/null && return; sleep 0.1; done
  echo "Orthanc did not start (see $OUT/orthanc.log)" >&2; exit 1
}
orthanc_down() { [ -n "$orthanc" ] && kill "$orthanc" 2>/dev/null && wait "$orthanc" 2>/dev/null; orthanc=""; }
trap orthanc_down EXIT
definition() { # SPOOL
  sed -e 's|^kind = "mp4"|kind = "fake"|' -e '/^path = "out\/default.mp4"/d' pipelines/default.toml
  printf '\n[[sinks]]\nkind = "pacs"\npath = "%s"\nport = %s\ncalled_ae = "ORTHANC"\n' "$1" "$DICOM"
}
frames=$((seconds * 30))

say "1. Orthanc up: $seconds s of the default pipeline"
definition "$OUT/spool-up" > "$OUT/up.toml"
orthanc_up
target/release/sonoflow run "$OUT/up.toml" --frames "$frames" --quiet --stats-json "$OUT/up.json"
up_instances="$(curl -sf "http://127.0.0.1:$HTTP/instances" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
sizes="$(cd "$OUT/orthanc" && find . -type f -size +1k -printf '%s\n' | sort -n | tr '\n' ' ')"
orthanc_down
rm -rf "$OUT/orthanc"

say "2. Orthanc down from 10 s to $((10 + outage)) s of a $seconds s run"
definition "$OUT/spool-outage" > "$OUT/outage.toml"
orthanc_up
target/release/sonoflow run "$OUT/outage.toml" --frames "$frames" --quiet --stats-json "$OUT/outage.json" &
run=$!
sleep 10; orthanc_down; say "Orthanc down"
sleep "$outage"; orthanc_up; say "Orthanc up again"
wait "$run"
outage_instances="$(curl -sf "http://127.0.0.1:$HTTP/instances" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
left="$(find "$OUT/spool-outage" -maxdepth 1 -name '*.dcm' | wc -l)"

python3 - "$OUT" "$up_instances" "$outage_instances" "$left" "$sizes" <<'PY'
import json, sys
out, up_n, outage_n, left, sizes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split()
summary = {}
for name, instances in (("up", up_n), ("outage", outage_n)):
    r = json.load(open(f"{out}/{name}.json"))
    d = [s for s in r["dicom"] if s.get("pacs")][0]
    p = d["pacs"]
    summary[name] = {"keyframes": d["keyframes"], "stored": d["stored"], "objects": d["objects"],
                     "bytes": d["bytes"], "sent": p["sent"], "refused": p["refused"],
                     "pending_at_end": p["pending_at_end"], "failed_tries": p["failed_tries"],
                     "orthanc_instances": instances, "keyframe_to_ack_ms": p["keyframe_to_ack_ms"],
                     "spool_to_ack_ms": p["spool_to_ack_ms"], "frames_out": r["frames_out"],
                     "dropped": sum(r["dropped"].values())}
summary["outage"]["spool_left"] = left
summary["object_sizes_bytes"] = [int(s) for s in sizes]
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
for name, s in summary.items():
    if name == "object_sizes_bytes":
        continue
    k = s["keyframe_to_ack_ms"]
    print(f"{name:7} keyframes {s['keyframes']} stored {s['stored']} objects {s['objects']} sent {s['sent']} "
          f"in Orthanc {s['orthanc_instances']} pending {s['pending_at_end']} failed tries {s['failed_tries']} "
          f"keyframe->ack p50 {k['p50']:.0f} ms p99 {k['p99']:.0f} ms; frames out {s['frames_out']}, dropped {s['dropped']}")
print("object sizes (bytes):", summary["object_sizes_bytes"])
PY
