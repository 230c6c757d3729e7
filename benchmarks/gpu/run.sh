#!/usr/bin/env bash
# The GPU check in one command (see benchmarks/gpu/__init__.py): unbuffered, results under --out as they come.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
unset TRITON_INTERPRET  # the kernels run natively on the GPU
exec "$PYTHON" -u -m sdk.benchmarks.gpu "$@"
