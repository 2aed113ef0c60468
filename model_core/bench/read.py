"""``mome bench read``: peak memory of reading and preprocessing, relative to the declared voxel data.

Memory is measured with :mod:`tracemalloc` (numpy, nibabel, pydicom and our readers allocate through it;
SimpleITK runs in its own process and is bounded by that process's address-space limit), per case:

* ``read_peak``: the most memory held at once while the study (or file) is read, and ``read_ratio`` =
  ``read_peak / declared``, where ``declared`` is the float32 size of the volumes that came back;
* ``preprocess_extra``: the most memory preprocessing adds on top of the study it is given, and
  ``preprocess_ratio`` = ``preprocess_extra / declared``.

The corpus is a folder whose entries (study folders or image files) are the cases; without one, a corpus
is written to a temporary folder: one synthetic study (7 DCE phases, 2 b-values, T2) as float32, float64
and int16 NIfTI (plain and gzip), and its T2 as NRRD (gzip) and MetaImage. The fuzz corpus is measured by
``scripts/fuzz_readers.py --memory``, which uses :func:`traced_peak` around every case.
"""

from __future__ import annotations

import json
import logging
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MIB = float(1 << 20)


def traced_peak(fn: Callable[[], Any]) -> tuple[Any, BaseException | None, int]:
    """Run ``fn`` under tracemalloc; ``(result, exception, peak bytes above the memory held before)``."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    result, error = None, None
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - returned to the caller, which records it
        error = exc
    peak = tracemalloc.get_traced_memory()[1] - before
    if started:
        tracemalloc.stop()
    return result, error, int(peak)


def _declared(obj: Any) -> int:
    """float32 bytes of a Volume or of every volume of a Study."""
    if hasattr(obj, "data"):
        return int(obj.data.size) * 4
    vols = [*(obj.dce or []), *obj.dwi.values(), *(v for v in (obj.t2, obj.t1) if v is not None)]
    return sum(int(v.data.size) * 4 for v in vols)


def measure_case(path: Path, sizes: Any = None, preprocess: bool = True) -> dict[str, Any]:
    """Read one case (a study folder or an image file) and preprocess it (studies), measuring peaks."""
    from model_core.preprocessing.preprocess import preprocess as run_preprocess
    from model_core.studies import read_study, read_volume

    read = read_study if path.is_dir() else read_volume
    tracemalloc.start()
    try:
        obj, error, peak = traced_peak(lambda: read(path))
        row: dict[str, Any] = {"case": path.name, "read_peak_mib": round(peak / MIB, 2)}
        if error is not None:
            row["error"] = f"{type(error).__name__}: {str(error)[:160]}"
            return row
        declared = _declared(obj)
        row.update(declared_mib=round(declared / MIB, 2), read_ratio=round(peak / declared, 3))
        if preprocess and path.is_dir():
            _, error, extra = traced_peak(lambda: run_preprocess(obj, sizes))
            row.update(preprocess_extra_mib=round(extra / MIB, 2), preprocess_ratio=round(extra / declared, 3))
            if error is not None:
                row["preprocess_error"] = f"{type(error).__name__}: {str(error)[:160]}"
        return row
    finally:
        tracemalloc.stop()


def write_corpus(folder: Path, scale: float = 0.5) -> list[Path]:
    """The default corpus (see the module docstring); ``scale`` sets the matrix sizes (1 = paper size)."""
    import nibabel as nib
    import SimpleITK as sitk

    from model_core.bench.preprocess import synthetic_study

    def n(v: int) -> int:
        return max(16, int(round(v * scale / 8)) * 8)

    study = synthetic_study(dce=((n(448), n(448), n(160)), (0.75 / scale, 0.75 / scale, 1.1 / scale), (0, 10, 0)),
                            dwi=((n(224), n(224), n(40)), (1.5 / scale, 1.5 / scale, 4.0), (2, 8, -3)),
                            t2=((n(448), n(448), n(40)), (0.75 / scale, 0.75 / scale, 4.0), (-1, 12, 2)))
    vols = {**{f"dce_{k}": v for k, v in enumerate(study.dce or [])},
            **{f"dwi_b{int(b)}": v for b, v in study.dwi.items()}, "t2": study.t2}
    cases = []
    for dtype, suffix in ((np.float32, ".nii.gz"), (np.float64, ".nii.gz"), (np.int16, ".nii"), (np.float64, ".nii")):
        case = folder / f"study_{np.dtype(dtype).name}{suffix.replace('.', '_')}"
        case.mkdir(parents=True)
        names = {}
        for name, v in vols.items():
            assert v is not None
            img = nib.Nifti1Image(np.asarray(v.data, dtype=dtype), v.affine)
            img.set_sform(v.affine, code=1)
            nib.save(img, str(case / f"{name}{suffix}"))
            names[name] = f"{name}{suffix}"
        dce = [names[k] for k in sorted(names) if k.startswith("dce_")]
        dwi = {k.removeprefix("dwi_b"): names[k] for k in names if k.startswith("dwi_")}
        (case / "study.json").write_text(json.dumps({"dce": dce, "dwi": dwi, "t2": names["t2"]}))
        cases.append(case)
    assert study.t2 is not None
    t2 = sitk.GetImageFromArray(np.ascontiguousarray(study.t2.data.transpose(2, 1, 0)))
    t2.SetSpacing(tuple(float(s) for s in study.t2.spacing))
    for name, compress in (("t2.nrrd", True), ("t2.mha", False)):
        sitk.WriteImage(t2, str(folder / name), useCompression=compress)
        cases.append(folder / name)
    return cases


def bench_read(corpus: str | Path | None = None, sizes: Any = None, scale: float = 0.5) -> dict[str, Any]:
    """Measure every case of ``corpus`` (default: :func:`write_corpus` in a temporary folder).

    Returns ``{"cases": [...], "max_read_ratio", "max_preprocess_ratio", "worst_read", "worst_preprocess"}``.
    """
    with tempfile.TemporaryDirectory(prefix="mome-bench-read-") as tmp:
        paths = sorted(Path(corpus).iterdir()) if corpus else write_corpus(Path(tmp), scale)
        rows = []
        for p in paths:
            rows.append(measure_case(p, sizes))
            log.info("bench read: %s", rows[-1])
    read = [r for r in rows if "read_ratio" in r]
    prep = [r for r in rows if "preprocess_ratio" in r]
    worst_read = max(read, key=lambda r: r["read_ratio"], default=None)
    worst_prep = max(prep, key=lambda r: r["preprocess_ratio"], default=None)
    return {"cases": rows,
            "max_read_ratio": worst_read and worst_read["read_ratio"],
            "worst_read": worst_read and worst_read["case"],
            "max_preprocess_ratio": worst_prep and worst_prep["preprocess_ratio"],
            "worst_preprocess": worst_prep and worst_prep["case"],
            "max_refused_peak_mib": max((r["read_peak_mib"] for r in rows if "error" in r), default=None)}
