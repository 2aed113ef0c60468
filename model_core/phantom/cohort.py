"""Many phantom cases on disk plus a cohort manifest CSV.

Case ``index`` of a cohort gets the seed :func:`case_seed` ``(cohort_seed, index)``, so any case can be
regenerated alone with ``generate_study(case_seed(cohort_seed, index), site, scale=scale)``. Folders are
``out_dir/case_00000`` ...; ``out_dir/cohort.csv`` has one row per case (paths relative to ``out_dir``,
columns :data:`COLUMNS`; ``pcr`` is empty for benign cases) and ``out_dir/cohort.json`` the settings.

Resumable: a case whose ``truth.json`` exists (written last) is not generated again.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from model_core.phantom.generate import generate_study
from model_core.phantom.params import get_world
from model_core.phantom.sites import get_site
from model_core.phantom.writers import FORMATS, write_case

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "case_id", "path", "dicom_path", "truth_path", "index", "seed", "site", "malignant", "birads",
    "birads_subcategory", "age", "bpe", "density", "field_strength", "tnbc", "pcr", "lesion_diameter_mm",
    "shape", "margin", "enhancement_pattern", "kinetic_type", "adc", "t2_ratio", "side", "n_post", "b_max",
    "t2_kind", "t2_oedema",
)  # fmt: skip


def case_seed(cohort_seed: int, index: int) -> int:
    """Deterministic per-case seed (< 2**32) from the cohort seed and the case index."""
    state = np.random.SeedSequence([int(cohort_seed), int(index)]).generate_state(1, dtype=np.uint32)
    return int(state[0])


def case_seeds(cohort_seed: int, n: int) -> list[int]:
    """The case seeds of a cohort of ``n`` cases: :func:`case_seed` of each index, distinct (a 32-bit
    collision is replaced by another deterministic seed)."""
    seeds: list[int] = []
    used: set[int] = set()
    for i in range(n):
        s, attempt = case_seed(cohort_seed, i), 0
        while s in used:  # a 32-bit collision: derive another, still deterministic
            attempt += 1
            s = int(np.random.SeedSequence([int(cohort_seed), i, attempt]).generate_state(1, np.uint32)[0])
        used.add(s)
        seeds.append(s)
    return seeds


def _one(
    index: int, seed: int, site: str, scale: float, out_dir: str, formats: tuple[str, ...], compress: bool = True,
    world: str = "v1",
) -> dict[str, Any]:
    """Generate and write one case (runs in a worker process); returns its CSV row."""
    root = Path(out_dir)
    folder = root / f"case_{index:05d}"
    truth_path = folder / "truth.json"
    if truth_path.exists():
        doc = json.loads(truth_path.read_text(encoding="utf-8"))
        labels = doc["labels"]
    else:
        case = generate_study(seed, site, scale=scale, params=get_world(world))
        write_case(case, folder, formats, compress=compress)
        labels = case.labels()
    rel = folder.relative_to(root)
    primary = "nifti" if "nifti" in formats else "dicom"
    row = {**labels, "index": index, "path": str(rel / primary), "truth_path": str(rel / "truth.json")}
    row["dicom_path"] = str(rel / "dicom") if "dicom" in formats else ""
    return row


def write_cohort(
    n: int,
    site: str = "ds1",
    seed: int = 0,
    out_dir: str | Path = "phantom_cohort",
    workers: int = 1,
    *,
    scale: float = 1.0,
    formats: Iterable[str] = FORMATS,
    compress: bool = True,
    progress: bool = True,
    on_case: Callable[[dict[str, Any]], None] | None = None,
    world: str = "v1",
) -> Path:
    """Write ``n`` cases of one site and the cohort CSV.

    Args:
        n: number of cases.
        site: site profile name.
        seed: cohort seed (see :func:`case_seed`).
        out_dir: created if needed.
        workers: processes (1 = in this process). Workers use single-threaded BLAS.
        scale: resolution factor passed to :func:`generate_study`.
        formats: ``"nifti"`` and/or ``"dicom"``.
        compress: NIfTI as ``.nii.gz`` (default) or ``.nii`` (faster to write and read).
        progress: show a tqdm bar on stderr.
        on_case: called with each finished row (in completion order).
        world: the phantom world (:data:`model_core.phantom.params.WORLDS`); a folder written with another
            world is refused (its finished cases would be kept).

    Returns:
        Path of ``cohort.csv``.
    """
    prof = get_site(site)
    fmts = tuple(formats)
    bad = sorted(set(fmts) - set(FORMATS))
    if bad or not fmts:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {fmts}")
    if n < 0 or workers < 1:
        raise ValueError(f"need n >= 0 and workers >= 1, got n={n}, workers={workers}")
    get_world(world)
    root = Path(out_dir)
    _check_same_world(root, world)
    root.mkdir(parents=True, exist_ok=True)
    seeds = case_seeds(seed, n)
    settings = {
        "n": n,
        "site": prof.name,
        "seed": seed,
        "scale": scale,
        "formats": list(fmts),
        "compress": compress,
        "synthetic": True,
        "world": world,
    }
    (root / "cohort.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    rows: dict[int, dict[str, Any]] = {}
    bar = _bar(n, progress, f"phantom {prof.name}")
    jobs = [(i, seeds[i], prof.name, float(scale), str(root), fmts, compress, world) for i in range(n)]
    try:
        if workers == 1:
            for job in jobs:
                rows[job[0]] = _done(_one(*job), bar, on_case)
        else:
            with (
                _single_thread_blas_env(),
                ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool,
            ):
                futures = [pool.submit(_one, *job) for job in jobs]
                for fut in as_completed(futures):
                    row = fut.result()
                    rows[row["index"]] = _done(row, bar, on_case)
    finally:
        if bar is not None:
            bar.close()
    csv_path = _write_manifest(root / "cohort.csv", [rows[i] for i in range(n)])
    log.info("wrote %d %s cases to %s", n, prof.name, root)
    return csv_path


def _write_manifest(path: Path, rows: list[dict[str, Any]]) -> Path:
    """The cohort CSV: one row per case in index order, columns :data:`COLUMNS`."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _check_same_world(root: Path, world: str) -> None:
    """Refuse to add cases of ``world`` to a cohort folder written with another world."""
    settings = root / "cohort.json"
    if not settings.is_file():
        return
    try:
        before = json.loads(settings.read_text(encoding="utf-8")).get("world", "v1")
    except (OSError, ValueError, AttributeError):
        return
    if before != world:
        raise ValueError(f"{root} holds a phantom cohort of world {before!r}; writing world {world!r} into it "
                         "would mix the two (choose another --out)")


def _done(row: dict[str, Any], bar: Any, on_case: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    if bar is not None:
        bar.update(1)
    if on_case is not None:
        on_case(row)
    return row


def _bar(n: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=n, desc=desc, unit="case", file=sys.stderr)


@contextmanager
def _single_thread_blas_env() -> Iterator[None]:
    """Spawned workers inherit single-threaded BLAS settings (``workers`` processes share the cores)."""
    keys = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
