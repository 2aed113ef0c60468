#!/usr/bin/env bash
# Create .venv and install the project with its test and napari extras (napari + PyQt6, pytest-qt,
# pytest-xvfb: the GUI tests run under an Xvfb that pytest-xvfb starts). Idempotent; re-runs only when
# pyproject.toml changed. torch is installed first, pinned to the CPU build on this kind of machine
# (a bare `torch` requirement would pull a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}" 2>&1 | grep -v "^WARNING: Location" || true
fi
.venv/bin/python -m pip install -q -e ".[test,napari]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, model_core; print('torch', torch.__version__, 'model_core', model_core.__version__)"
echo "$want" > "$STAMP"
