"""docs/forced-iteration.md: every `python` block is a program, and runs.

A block preceded by an HTML comment starting with `<!-- not run` is shown only (it needs a
display, or is a test module); the comment says which test covers it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "forced-iteration.md"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.DOTALL)


def blocks() -> list[tuple[int, str]]:
    """(line number, code) of each block to run."""
    text = GUIDE.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        if match["before"].startswith("<!-- not run"):
            continue
        line = text.count("\n", 0, match.start("code")) + 1
        found.append((line, match["code"]))
    return found


def test_the_guide_has_examples() -> None:
    assert len(blocks()) >= 8


@pytest.mark.parametrize(("line", "code"), blocks(), ids=[f"line{n}" for n, _ in blocks()])
def test_guide_example_runs(line: int, code: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
    )
    assert proc.returncode == 0, f"docs/forced-iteration.md:{line}:\n{proc.stderr}"
