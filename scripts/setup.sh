#!/usr/bin/env bash
# Set everything up on a fresh machine and run the forced-iteration demo:
# a virtual environment in .venv, steploop built in release mode into it, the demo run on it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "maturin>=1.9.4,<2"
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release -q
.venv/bin/python examples/python/demo_forced_iteration.py
