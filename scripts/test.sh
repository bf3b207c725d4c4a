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

step "Xvfb and Tk for the Tk integration tests (tests/test_tkinter.py)"
# Installed only if missing. If they cannot be installed (no apt-get, not root, offline),
# those tests skip with the reason; otherwise STEPLOOP_REQUIRE_TK makes a missing one a failure.
have_tk() { command -v Xvfb >/dev/null && .venv/bin/python -c "import tkinter" 2>/dev/null; }
if ! have_tk && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        xvfb libtk8.6 >/dev/null; } || true
fi
if have_tk; then
    export STEPLOOP_REQUIRE_TK=1
else
    echo "warning: no Xvfb or no tkinter in .venv: the Tk tests will be skipped" >&2
fi

step "wrk for the uvicorn benchmark rows (benches/workloads.py)"
# Installed only if missing. Without it the quick benchmark run reports those rows as skipped.
if ! command -v wrk >/dev/null && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk \
        >/dev/null; } || true
fi
command -v wrk >/dev/null || echo "warning: no wrk: the uvicorn benchmark rows will be skipped" >&2

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
