# Variables shared by the bootstrap, run and test scripts. Source it; it prints nothing.
SONOFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SONOFLOW_ROOT
export ORT_VERSION="1.31.1"
export SONOFLOW_VENV="${SONOFLOW_VENV:-$SONOFLOW_ROOT/.venv}"
# ort's load-dynamic feature reads this path; the bootstrap links it to the wheel's library.
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$SONOFLOW_VENV/libonnxruntime.so.$ORT_VERSION}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"
