#!/usr/bin/env bash
# Creates .venv with mer and every dependency; a second call is a quick no-op check.
# Python: $PYTHON if set, else the newest of python3.13, python3.12 and python3.11 that runs here.
# MER_VENV names another environment folder (default .venv), e.g. to try a second Python beside the first.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${MER_VENV:-.venv}
supported() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; }
if [ -n "${PYTHON:-}" ]; then
  supported "$PYTHON" || { echo "setup.sh: PYTHON=$PYTHON is not a Python 3.11, 3.12 or 3.13 that runs" >&2; exit 1; }
  PY=$PYTHON
else
  PY=
  for candidate in python3.13 python3.12 python3.11; do
    # `command -v` is not enough: a pyenv shim exists for every installed version but runs only the active ones
    if supported "$candidate"; then PY=$candidate; break; fi
  done
  [ -n "$PY" ] || { echo "setup.sh: needs python3.13, python3.12 or python3.11 on PATH (or PYTHON=/path/to/python)" >&2; exit 1; }
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup.sh: creating $VENV with $PY ($("$PY" --version 2>&1))"
  "$PY" -m venv "$VENV"
fi
echo "setup.sh: $VENV runs $("$VENV/bin/python" --version 2>&1)"
stamp=$VENV/.mer-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # An environment made before mer needed TV-L1 flow has plain OpenCV, which shares the cv2 folder with the
  # contrib build: remove both, so that the install below writes cv2 once, whole.
  if "$VENV/bin/python" -m pip show --quiet opencv-python-headless 2>/dev/null; then
    "$VENV/bin/python" -m pip uninstall --quiet --yes opencv-python-headless opencv-contrib-python-headless
  fi
  "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi
"$VENV/bin/python" -c "import mer, torch, timm, dlib, cv2, h5py, snakemake; cv2.optflow.DualTVL1OpticalFlow_create" \
  || { echo "setup.sh: the environment in $VENV is broken; delete $VENV and rerun" >&2; exit 1; }
