#!/usr/bin/env python3
"""Group the failures of a ``run.py --json FILE`` run by their final exception line (triage aid).

python tests/cpython/run.py --json /tmp/r.json; python tests/cpython/group_failures.py /tmp/r.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

PASSING = {"ok", "skip", "expected_failure"}


def key_of(rec: dict[str, Any]) -> str:
    lines = [ln for ln in rec.get("message", "").strip().splitlines() if ln.strip()]
    if rec["status"] in ("crash", "timeout"):
        key = f"{rec['status']}: {lines[0] if lines else ''}"
    else:
        key = lines[-1] if lines else rec["status"]
    return re.sub(r"0x[0-9a-f]+|fd=\d+", "<n>", key)[:200]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    data = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    groups: defaultdict[str, list[str]] = defaultdict(list)
    for records in data["results"].values():
        for rec in records:
            if rec["status"] not in PASSING:
                groups[key_of(rec)].append(f"{rec['id']} ({rec['status']})")
    for key, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"\n[{len(ids)}] {key}")
        print("\n".join(f"    {i}" for i in ids))
    for module, error in data.get("module_errors", {}).items():
        print(f"\nMODULE {module}: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
