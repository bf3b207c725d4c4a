#!/usr/bin/env bash
# The whole test suite: lints, the engine's Rust tests, the Python behaviour tests on asyncio
# and on steploop (twice: the second time in asyncio debug mode), the examples, CPython's own
# test_asyncio on steploop, and the benchmarks in their quick form (which assert no speed).
# Sets up what it needs itself, so it runs on a fresh clone (CI runs it via .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYO3_PYTHON="$PWD/.venv/bin/python"
export VIRTUAL_ENV="$PWD/.venv"

step() { printf '\n==> %s\n' "$*"; }

step "environment"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "maturin>=1.9.4,<2" -r tests/requirements.txt -r benches/requirements.txt

step "build (release) and install into .venv"
.venv/bin/maturin develop --release -q

step "rust: fmt, clippy, doc"
cargo fmt --all --check
cargo clippy --workspace --all-targets -q -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q

step "rust: engine tests"
cargo nextest run -p steploop --no-fail-fast
cargo test -p steploop --doc -q

step "python: ruff, mypy, stubtest"
.venv/bin/ruff check python tests examples benches
.venv/bin/ruff format --check python tests examples benches
.venv/bin/mypy
.venv/bin/python -m mypy.stubtest steploop._steploop --allowlist tests/stubtest-allowlist.txt

step "python: behaviour tests on asyncio and steploop, CPython conformance, quick benches"
.venv/bin/python -m pytest tests -q -p no:cacheprovider

step "python: behaviour tests again in asyncio debug mode (PYTHONASYNCIODEBUG=1)"
PYTHONASYNCIODEBUG=1 STEPLOOP_SKIP_CPYTHON=1 STEPLOOP_SKIP_BENCHES=1 \
    .venv/bin/python -m pytest tests -q -p no:cacheprovider

printf '\nall checks passed\n'
