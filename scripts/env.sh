# Sourced by the other scripts: prepares (once) and activates the environment every command
# needs on a fresh machine. Idempotent and cached between runs:
#   $DLBRIDGE_CACHE/venv    Python venv with the pinned wheels of requirements-dev.txt
#   $DLBRIDGE_CACHE/target  the cargo target folder (shared by every clone)
# Variables it exports: CARGO_TARGET_DIR, LIBTORCH_USE_PYTORCH=1 (tch builds against the venv's
# torch), LD_LIBRARY_PATH (torch's lib/ for the binaries that link libtorch), DLBRIDGE_PYTHON.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DLBRIDGE_CACHE="${DLBRIDGE_CACHE:-$HOME/.cache/dlbridge}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$DLBRIDGE_CACHE/target}"
VENV="$DLBRIDGE_CACHE/venv"
mkdir -p "$DLBRIDGE_CACHE"

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi

stamp="$VENV/.dlbridge-requirements"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$ROOT/requirements-dev.txt" "$stamp"; then
  echo "== setting up the Python venv in $VENV (pinned wheels; about a minute)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements-dev.txt"
  cp "$ROOT/requirements-dev.txt" "$stamp"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export DLBRIDGE_PYTHON="$VENV/bin/python"
export LIBTORCH_USE_PYTORCH=1
TORCH_LIB="$("$DLBRIDGE_PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cd "$ROOT"
