"""Child-process side of :mod:`model_core.studies.isolate`: reads images with SimpleITK, one request per line.

Run as ``python -I _sitk_worker.py MEMORY_LIMIT_BYTES``. Protocol (JSON lines, no pickle anywhere):

* stdout, first line: ``{"ready": true}``.
* stdin request: ``{"id": n, "path": str, "imageio": "NrrdImageIO" | "MetaImageIO", "size": [x, y, z],
  "dtype": numpy dtype string of the file's voxels (e.g. ``"<i2"``), "out": str}``.
* stdout reply: ``{"id": n, "ok": true, "size": [...], "spacing": [...], "origin": [...],
  "direction": [9 floats], "pixel": str}`` after writing the voxels, converted back to the file's declared
  type and byte order (so that their bytes are the bytes of the file's data), as a ``(z, y, x)`` ``.npy``
  to ``out``; or ``{"id": n, "ok": false, "error": str}``.

The size SimpleITK reads from the header is compared with the parent's approved size *before* the voxels
are read. A native crash simply ends this process; the parent reports it as a ``StudyReadError``. File
descriptor 1 is moved to stderr so that library chatter cannot corrupt the protocol. This file imports
nothing from the project (it runs with ``-I``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _limit_memory(limit: int) -> None:
    if limit <= 0:
        return
    try:
        import resource  # POSIX only; elsewhere the child simply runs without an address-space cap
    except ImportError:
        return
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"cannot set RLIMIT_AS: {exc}\n")


def _handle(req: dict[str, Any], sitk: Any, np: Any) -> dict[str, Any]:
    reader = sitk.ImageFileReader()
    reader.SetImageIO(str(req["imageio"]))
    reader.SetFileName(str(req["path"]))
    reader.ReadImageInformation()
    size = [int(s) for s in reader.GetSize()]
    dim, comps = int(reader.GetDimension()), int(reader.GetNumberOfComponents())
    if dim != 3 or comps != 1 or size != [int(s) for s in req["size"]]:
        return {
            "ok": False,
            "error": f"SimpleITK reads dimension {dim}, size {size}, {comps} component(s); "
            f"the header check approved a scalar 3-D volume of size {req['size']}",
        }
    img = reader.Execute()
    if [int(s) for s in img.GetSize()] != size or img.GetNumberOfComponentsPerPixel() != 1:
        return {"ok": False, "error": f"SimpleITK returned size {list(img.GetSize())}, expected {size}"}
    view = sitk.GetArrayViewFromImage(img)
    file_dtype = np.dtype(str(req["dtype"]))
    arr = np.asarray(view).astype(file_dtype)  # a fresh array, in the file's own type and byte order
    if not np.array_equal(arr, view, equal_nan=arr.dtype.kind == "f"):
        return {"ok": False, "error": f"SimpleITK values do not fit the declared type {file_dtype.str}"}
    np.save(str(req["out"]), arr, allow_pickle=False)
    return {
        "ok": True,
        "size": size,
        "spacing": [float(v) for v in img.GetSpacing()],
        "origin": [float(v) for v in img.GetOrigin()],
        "direction": [float(v) for v in img.GetDirection()],
        "pixel": str(img.GetPixelIDTypeAsString()),
    }


def main() -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    _limit_memory(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    import numpy as np
    import SimpleITK as sitk

    sitk.ProcessObject.GlobalWarningDisplayOff()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        try:
            req = json.loads(line)
        except ValueError:
            return 2
        try:
            reply = _handle(req, sitk, np)
        except (RuntimeError, OSError, ValueError, TypeError, KeyError, MemoryError, OverflowError) as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).strip()[-400:]}"}
        reply["id"] = req.get("id")
        proto.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
