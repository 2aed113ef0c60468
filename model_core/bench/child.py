"""Running one benchmark case in a clean child process (``python -m model_core.bench.worker KIND PAYLOAD``).

A child's peak RSS is its own; the worker prints the case's figures as one JSON line on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def run_child(kind: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "model_core.bench.worker", kind, json.dumps(payload)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**payload, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {**payload, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])
