"""The child-process entry of the benchmarks: ``python -m model_core.bench.worker KIND PAYLOAD``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from model_core.bench.forward import ForwardCase, matmul_gflops, run_forward_case
from model_core.bench.inference import InferenceCase, run_inference_case


def _main(argv: Sequence[str]) -> int:
    kind, payload = argv[0], json.loads(argv[1])
    if kind == "matmul":
        res: dict[str, Any] = matmul_gflops(int(payload["threads"]))
    elif kind == "forward":
        res = run_forward_case(ForwardCase(**payload))
    elif kind == "inference":
        res = run_inference_case(InferenceCase(**payload))
    else:
        raise SystemExit(f"unknown bench kind {kind!r}")
    sys.stdout.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
