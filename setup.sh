#!/usr/bin/env bash
# Creates .venv (Python 3.11) with mer and every dependency; a second call is a quick no-op check.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.mer-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi
.venv/bin/python -c "import mer, torch, timm, dlib, cv2, h5py, snakemake" \
  || { echo "setup.sh: the environment in .venv is broken; delete .venv and rerun" >&2; exit 1; }
