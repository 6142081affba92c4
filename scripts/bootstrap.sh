#!/usr/bin/env bash
# Idempotent set-up for sonoflow on Debian/Ubuntu: system packages, the pinned
# onnxruntime shared library (from its PyPI wheel, in a project-local venv), and
# the Rust build. Each step checks first and does nothing when already done.
#
# Usage: scripts/bootstrap.sh [--no-build]
# Prints `export` lines nowhere; source scripts/env.sh for the variables.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=env.sh
source "$ROOT/scripts/env.sh"

say()  { printf '\033[1;34m[bootstrap]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[bootstrap] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- 1. Debian packages ------------------------------------------------------
APT_PACKAGES=(
  pkg-config build-essential
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  python3 python3-venv python3-pip
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || fail "missing Debian packages (${missing[*]}) and no apt-get on this machine; install them by hand"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || fail "missing Debian packages (${missing[*]}); run as root or install sudo"
    SUDO="sudo"
  fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq || fail "apt-get update failed; check the network or the apt sources"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install failed for: ${missing[*]}"
else
  say "Debian packages: present"
fi

# --- 2. onnxruntime shared library (pinned wheel in .venv) -------------------
if [ -f "$ORT_DYLIB_PATH" ]; then
  say "onnxruntime $ORT_VERSION: present ($ORT_DYLIB_PATH)"
else
  PY="$(command -v python3 || true)"
  [ -n "$PY" ] || fail "python3 not found; install the python3 package"
  if [ ! -x "$SONOFLOW_VENV/bin/python" ]; then
    say "creating Python venv at $SONOFLOW_VENV"
    "$PY" -m venv "$SONOFLOW_VENV" || fail "python3 -m venv failed; install the python3-venv package"
  fi
  say "installing onnxruntime==$ORT_VERSION from PyPI into $SONOFLOW_VENV"
  "$SONOFLOW_VENV/bin/python" -m pip install -q --disable-pip-version-check "onnxruntime==$ORT_VERSION" \
    || fail "pip could not install onnxruntime==$ORT_VERSION"
  found="$(ls "$SONOFLOW_VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so."$ORT_VERSION" 2>/dev/null | head -n1 || true)"
  [ -n "$found" ] || fail "the onnxruntime wheel has no libonnxruntime.so.$ORT_VERSION under $SONOFLOW_VENV"
  ln -sf "$found" "$ORT_DYLIB_PATH"
  say "onnxruntime library: $ORT_DYLIB_PATH"
fi

# --- 3. Rust toolchain and build ---------------------------------------------
command -v cargo >/dev/null || fail "cargo not found; install Rust 1.92 or newer with rustup (https://rustup.rs) and re-run"
if [ "${1:-}" != "--no-build" ]; then
  say "building sonoflow (cargo build --release; incremental after the first time)"
  (cd "$ROOT" && cargo build --release --locked -q -p sonoflow) || fail "cargo build failed (see above)"
fi
say "ready"
