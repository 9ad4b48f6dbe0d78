#!/usr/bin/env bash
# The GPU benchmark in one command: a CUDA build of llama-cpp-python in its own venv, then `sda-local bench` on
# the default model with every layer offloaded (the engine's n_gpu_layers = -1), JSON to results/bench-gpu.json.
#   tools/gpu_bench.sh [OUT.json] [extra sda-local bench options]
# Metal (Apple silicon): CMAKE_ARGS="-DGGML_METAL=on" tools/gpu_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/bench-gpu.json}; shift || true
VENV=${GPU_VENV:-.venv-gpu}
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_CUDA=on -DLLAVA_BUILD=OFF}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # build llama-cpp-python for the GPU first (never a cached CPU wheel), then sda-local on top of it
  "$VENV/bin/pip" install -q --no-cache-dir --force-reinstall "llama-cpp-python>=0.3.36,<0.4"
  "$VENV/bin/pip" install -q -e .
fi
"$VENV/bin/python" - <<'PY'
from sda_local.runtime.backend import backend_info
info = backend_info()
print("llama.cpp backend:", info["backend"], info["devices"])
if not info["gpu_offload"]:
    raise SystemExit("this llama-cpp-python build cannot offload to a GPU; check CMAKE_ARGS and the CUDA toolkit")
PY
"$VENV/bin/sda-local" bench --skip gemma peer "$@" > "$OUT"
echo "wrote $OUT"
