#!/usr/bin/env bash
# Idempotent set-up of the Python environment that serves sonoflow's models
# over the KServe v2 protocol (serve/, docs/scale-out.md): a venv at
# .venv-serve with MLServer 1.7, the pinned onnxruntime, numpy, and the
# Triton client (its gRPC stubs and model_config proto, for the tests and
# serve/triton/check_config.py). Installs run at nice 19. Each step checks
# first and does nothing when already done; prints what it did.
#
# Usage: scripts/serve-venv.sh            (SONOFLOW_SERVE_VENV overrides the path)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SONOFLOW_SERVE_VENV:-$ROOT/.venv-serve}"
ORT_VERSION="1.31.1"
# 1.7.1 is the newest 1.7.x on PyPI and installs on CPython 3.9 to 3.12.
MLSERVER_VERSION="1.7.1"
REQUIREMENTS=(
  "mlserver==$MLSERVER_VERSION"
  "onnxruntime==$ORT_VERSION"
  "numpy"
  "tritonclient[grpc]"
  # MLServer 1.7.1's worker processes call asyncio.get_event_loop() outside a
  # running loop, which uvloop 0.22 and later refuse ("There is no current
  # event loop"): every worker dies at start-up.
  "uvloop<0.22"
)

say()  { printf '\033[1;34m[serve-venv]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[serve-venv] error:\033[0m %s\n' "$*" >&2; exit 1; }

PY="${PYTHON:-$(command -v python3 || true)}"
[ -n "$PY" ] || fail "python3 not found; install the python3 package"
"$PY" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 12) else 1)' \
  || fail "MLServer $MLSERVER_VERSION needs CPython 3.9 to 3.12; $("$PY" --version) found (set PYTHON=...)"

if [ -x "$VENV/bin/python" ]; then
  say "venv: present ($VENV)"
else
  say "creating venv at $VENV"
  nice -n 19 "$PY" -m venv "$VENV" || fail "python3 -m venv failed; install the python3-venv package"
fi
# Keep the venv out of git without touching the repository's .gitignore.
[ -f "$VENV/.gitignore" ] || echo '*' >"$VENV/.gitignore"

installed() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m, sys
want = {"mlserver": "1.7.1", "onnxruntime": "1.31.1"}
for name, version in want.items():
    if m.version(name) != version:
        sys.exit(1)
for name in ("numpy", "tritonclient", "grpcio"):
    m.version(name)
if tuple(int(x) for x in m.version("uvloop").split(".")[:2]) >= (0, 22):
    sys.exit(1)
PY
}

if installed; then
  say "packages: present ($("$VENV/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{n} {m.version(n)}" for n in ("mlserver","onnxruntime","numpy","tritonclient","uvloop")))'))"
else
  say "installing ${REQUIREMENTS[*]} (nice 19)"
  nice -n 19 "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${REQUIREMENTS[@]}" \
    || fail "pip could not install ${REQUIREMENTS[*]}"
  installed || fail "the install finished but the versions are not the pinned ones"
  say "installed: $("$VENV/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{n} {m.version(n)}" for n in ("mlserver","onnxruntime","numpy","tritonclient","uvloop")))')"
fi
say "ready: $VENV (start the server with serve/run.sh)"
