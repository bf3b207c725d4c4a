"""Keep the Python benchmarks working: `benches/run.py --quick` and `benches/memory.py --quick`
on every loop, no timings and no memory bounds.

The benches report a loop that is missing or fails on a workload in its row instead of
crashing, so this checks the shape of the report and that asyncio, the reference, ran every
workload (the memory benchmark has two workloads, which every loop must run). The uvicorn
rows may be "skipped" only where wrk or uvicorn is really missing (scripts/test.sh installs
both). It asserts nothing about speed or memory (STYLE.md: never a timed test).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# scripts/test.sh sets this for its second pass (PYTHONASYNCIODEBUG=1): the benches ran in
# the first one, and their subprocesses do not depend on the test process's debug mode.
pytestmark = pytest.mark.skipif(
    os.environ.get("STEPLOOP_SKIP_BENCHES") == "1", reason="STEPLOOP_SKIP_BENCHES=1"
)

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
LOOPS = ["asyncio", "uvloop", "rloop", "steploop"]


def workload_names() -> list[str]:
    sys.path.insert(0, str(BENCHES))
    try:
        import workloads
    finally:
        sys.path.remove(str(BENCHES))
    return list(workloads.WORKLOADS)


def run_quick(script: str, out_option: str, out: Path) -> Any:
    """Runs ``benches/<script> --quick`` (outside debug mode) and returns its JSON output."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE")}
    proc = subprocess.run(
        [sys.executable, str(BENCHES / script), "--quick", out_option, str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_quick_run_reports_every_workload_on_every_loop(tmp_path: Path) -> None:
    data = run_quick("run.py", "--json", tmp_path / "quick.json")

    names = workload_names()
    assert [w["name"] for w in data["workloads"]] == names
    rows = {(r["workload"], r["loop"]): r for r in data["results"]}
    assert len(rows) == len(data["results"]), "duplicate rows"
    assert set(rows) == {(w, lp) for w in names for lp in LOOPS}

    can_load_uvicorn = bool(shutil.which("wrk")) and bool(importlib.util.find_spec("uvicorn"))
    for (workload, loop), row in rows.items():
        if row["status"] == "skipped":
            assert workload.startswith("uvicorn_") and row["error"], (workload, loop)
            assert not can_load_uvicorn, (workload, loop, row["error"])
            continue
        if row["status"] == "ok":
            assert row["median"] > 0 and row["samples"], (workload, loop)
        else:
            # reported, with a reason, not crashed
            assert row["error"], (workload, loop, row["status"])
        if loop == "asyncio":
            assert row["status"] == "ok", (workload, row.get("error"))
            assert row["vs_asyncio"] == 1.0
    for loop, info in data["meta"]["loops"].items():
        assert info["available"] == bool(info["version"]), loop
    assert data["meta"]["quick"] is True
    assert "samples" in data["meta"] and data["meta"]["cpu"]
    tools = data["meta"]["tools"]
    assert bool(tools["wrk"]) == bool(shutil.which("wrk")), tools
    if can_load_uvicorn:
        # the uvicorn rows that ran name the server's --loop and --http (asyncio's always ran)
        variants = {
            row["variant"]
            for (workload, _), row in rows.items()
            if workload.startswith("uvicorn_") and row["status"] == "ok"
        }
        assert variants and all(v.startswith("--loop ") for v in variants), variants


def test_render_writes_markdown_and_chart(tmp_path: Path) -> None:
    """render.py turns a results file into the markdown page (chart if matplotlib is there)."""
    results = {
        "meta": {
            "date": "2024-01-01T00:00:00+00:00",
            "cpu": "Test CPU",
            "cores": 2,
            "python": "3.11.0",
            "platform": "test",
            "loops": {
                "asyncio": {"available": True, "version": "3.11.0", "error": None},
                "steploop": {"available": False, "version": None, "error": "not installed"},
            },
            "quick": True,
            "samples": 1,
            "command": "python benches/run.py --quick",
            "elapsed": 1.0,
        },
        "workloads": [{"name": "w", "group": "scheduling", "description": "a workload"}],
        "results": [
            {
                "workload": "w",
                "loop": "asyncio",
                "status": "ok",
                "samples": [10.0],
                "median": 10.0,
                "min": 10.0,
                "max": 10.0,
                "vs_asyncio": 1.0,
                "vs_best_other": None,
                "best_other": None,
                "variant": "",
                "error": None,
            },
            {
                "workload": "w",
                "loop": "steploop",
                "status": "not installed",
                "samples": [],
                "median": None,
                "min": None,
                "max": None,
                "vs_asyncio": None,
                "vs_best_other": None,
                "best_other": None,
                "variant": "",
                "error": "not installed",
            },
        ],
    }
    src = tmp_path / "r.json"
    src.write_text(json.dumps(results))
    md = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(BENCHES / "render.py"), "--json", str(src), "--out", str(md)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    text = md.read_text()
    assert "Test CPU" in text and "| `w` | 10 | n/a |" in text


def test_memory_quick_reports_every_loop(tmp_path: Path) -> None:
    """`benches/memory.py --quick` measures both workloads on every loop; no memory bounds.

    At the quick sizes (10^3 timers, 50 connections) a workload can fit in memory the process
    already had, so a delta of 0 is allowed; only the shape and the signs are checked.
    """
    data = run_quick("memory.py", "--out", tmp_path / "memory.json")

    names = [w["name"] for w in data["workloads"]]
    assert names == ["timers_1e6", "connections_1e4"]
    rows = {(r["workload"], r["loop"]): r for r in data["results"]}
    assert len(rows) == len(data["results"]), "duplicate rows"
    assert set(rows) == {(w, lp) for w in names for lp in LOOPS}
    for (workload, loop), row in rows.items():
        assert row["status"] == "ok", (workload, loop, row.get("error"))
        assert row["count"] > 0 and len(row["samples"]) == 1
        assert row["baseline_mib"] > 0 and row["peak_mib"] > 0, (workload, loop)
        assert row["delta_mib"] >= 0 and row["peak_mib"] >= row["baseline_mib"], (workload, loop)
    for loop in LOOPS:
        info = data["meta"]["loops"][loop]
        assert info["available"] and info["version"], loop
    assert data["meta"]["quick"] is True
