"""Cohort CSV -> labelled cases -> cached model-ready arrays -> training / evaluation inputs.

A cohort CSV (e.g. from ``mome phantom``) has one row per study with at least ``case_id``, ``path`` (the
study folder, relative to the CSV's folder or absolute) and the label columns of the task
(``malignant``, ``tnbc``, ``pcr``); ``site`` and ``birads`` are kept when present.

Every study is read and preprocessed once (:func:`model_core.preprocessing.preprocess.preprocess`), the canvas resize
rule is applied (:func:`model_core.preprocessing.tta.fit`), and the result is cached as one ``.npy`` per modality
(``np.save``; loaded with ``allow_pickle=False``). Because the resize rule is idempotent, the training
augmentation (:func:`model_core.preprocessing.tta.random_augment`: random pad + one of 6 flips) and the val/test
transform (:func:`model_core.preprocessing.tta.center`) on a cached array equal those on the freshly prepared study.
The cache key hashes the study path, the canvas sizes and the preprocessing options, and each entry is
written to a temporary folder and renamed, so an interrupted run leaves no half entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from model_core.errors import TrainError
from model_core.evaluation.cohort import TaskSpec, check_unique_ids, read_cohort_rows
from model_core.network.config import MODALITIES
from model_core.network.mome import Mome
from model_core.preprocessing.preprocess import PreprocessOptions, preprocess
from model_core.preprocessing.tta import center, fit, random_augment
from model_core.studies import read_study

log = logging.getLogger(__name__)

Sizes = Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class CaseRef:
    """One labelled study. ``info`` keeps the CSV row's other fields (site, birads, ...) as strings."""

    case_id: str
    path: str
    label: int
    site: str = ""
    info: Mapping[str, str] = field(default_factory=dict)


def _flag(value: str, column: str, where: str) -> int | None:
    v = value.strip().lower()
    if v in ("", "nan", "none", "na"):
        return None
    if v in ("1", "1.0", "true", "yes"):
        return 1
    if v in ("0", "0.0", "false", "no"):
        return 0
    raise TrainError(f"{where}: column {column!r} must be 0/1, got {value!r}")


def read_cohort(csv_path: str | os.PathLike[str], task: TaskSpec) -> list[CaseRef]:
    """The cases of ``csv_path`` usable for ``task`` (TNBC/pCR: malignant cases with a label only).

    Raises:
        TrainError: missing file or columns, non-0/1 labels, duplicate case ids.
    """
    p = Path(csv_path)
    need = {"case_id", "path", task.label} | ({"malignant"} if task.malignant_only else set())
    kept = []
    for row in read_cohort_rows(p, required=need, error=TrainError, context=f" (task {task.name})"):
        where = f"{p}:{row.line}"
        if task.malignant_only and _flag(row.fields["malignant"], "malignant", where) != 1:
            continue
        label = _flag(row.fields[task.label], task.label, where)
        if label is None:
            if task.malignant_only:
                continue
            raise TrainError(f"{where}: empty {task.label!r} label")
        kept.append((row, label))
    check_unique_ids([row for row, _ in kept], p, TrainError)
    cases = [CaseRef(row.case_id, str(row.path.resolve()), label, row.fields.get("site") or "", row.fields)
             for row, label in kept]
    log.info("%s: %d cases for task %s (%d positive)", p, len(cases), task.name, sum(c.label for c in cases))
    return cases


def read_cohorts(paths: Sequence[str | os.PathLike[str]], task: TaskSpec) -> list[CaseRef]:
    """Several cohort CSVs concatenated (case ids must stay unique)."""
    out: list[CaseRef] = []
    for p in paths:
        out.extend(read_cohort(p, task))
    ids = [c.case_id for c in out]
    if len(set(ids)) != len(ids):
        raise TrainError("the cohorts share case ids; give each case once")
    return out


def cohort_is_synthetic(paths: Sequence[str | os.PathLike[str]]) -> bool:
    """Whether every CSV sits beside a ``cohort.json`` saying ``"synthetic": true`` (phantom cohorts)."""
    for p in paths:
        meta = Path(p).parent / "cohort.json"
        try:
            if not json.loads(meta.read_text(encoding="utf-8")).get("synthetic", False):
                return False
        except (OSError, ValueError):
            return False
    return bool(paths)


def cohort_record(csv_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The CSV's path and sha256 plus its ``cohort.json`` settings (site, seed, n, scale) when present."""
    p = Path(csv_path)
    rec: dict[str, Any] = {"csv": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
    try:
        rec.update(json.loads((p.parent / "cohort.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    return rec


def _sizes_json(sizes: Sizes) -> str:
    return json.dumps({m: [int(v) for v in sizes[m]] for m in sorted(sizes)}, sort_keys=True)


def _prepare_one(study_path: str, entry: str, sizes_json: str, options_json: str) -> str:
    """Read, preprocess and fit one study; write ``entry/{modality}.npy`` (runs in a worker process)."""
    sizes = {m: tuple(v) for m, v in json.loads(sizes_json).items()}
    prepared = preprocess(read_study(study_path), sizes, PreprocessOptions.from_dict(json.loads(options_json)))
    fitted = fit(prepared, sizes)
    final = Path(entry)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for m, f in fitted.items():
        np.save(tmp / f"{m}.npy", np.ascontiguousarray(f.resized, dtype=np.float32), allow_pickle=False)
    meta = {"study": study_path, "modalities": sorted(fitted), "sizes": json.loads(sizes_json),
            "ratios": {m: f.ratio for m, f in fitted.items()},
            "input_shapes": {m: list(f.input_shape) for m, f in fitted.items()}}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    try:
        os.replace(tmp, final)
    except OSError:  # another process finished the same entry first
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.is_dir():
            raise
    return study_path


class CaseCache:
    """Preprocessed, canvas-fitted arrays of studies on disk.

    Args:
        root: cache folder (created).
        sizes: canvas sizes per modality (``MomeConfig.sizes``).
        options: preprocessing options (default :class:`PreprocessOptions`).
    """

    def __init__(self, root: str | os.PathLike[str], sizes: Sizes, options: PreprocessOptions | None = None):
        self.root = Path(root)
        self.sizes = {m: tuple(int(v) for v in sizes[m]) for m in sizes}
        self.options = options or PreprocessOptions()
        self._sizes_json = _sizes_json(self.sizes)
        self._options_json = json.dumps(self.options.to_dict(), sort_keys=True)

    def entry(self, case: CaseRef) -> Path:
        key = hashlib.sha256("\n".join([case.path, self._sizes_json, self._options_json]).encode()).hexdigest()
        return self.root / key[:2] / key[2:24]

    def missing(self, cases: Sequence[CaseRef]) -> list[CaseRef]:
        return [c for c in cases if not (self.entry(c) / "meta.json").is_file()]

    def ensure(self, cases: Sequence[CaseRef], workers: int = 1, progress: bool = True) -> None:
        """Prepare every case not cached yet (``workers`` processes; 1 = in this process)."""
        todo = self.missing(cases)
        if not todo:
            return
        log.info("preprocessing %d of %d studies into %s", len(todo), len(cases), self.root)
        bar = case_bar(None, progress, "preprocess", total=len(todo))
        jobs = [(c.path, str(self.entry(c)), self._sizes_json, self._options_json) for c in todo]
        try:
            if workers <= 1:
                for job in jobs:
                    _prepare_one(*job)
                    bar.update(1)
            else:
                with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                    for fut in as_completed([pool.submit(_prepare_one, *j) for j in jobs]):
                        fut.result()
                        bar.update(1)
        finally:
            bar.close()

    def load(self, case: CaseRef) -> dict[str, np.ndarray]:
        """The fitted arrays ``modality -> float32 (C, X', Y', Z')`` (each axis <= the canvas)."""
        e = self.entry(case)
        if not (e / "meta.json").is_file():
            raise TrainError(f"{case.case_id}: not in the cache {self.root} (run ensure first)")
        return {m: np.load(e / f"{m}.npy", allow_pickle=False) for m in MODALITIES if (e / f"{m}.npy").is_file()}


def case_bar(items: Iterable[Any] | None, enabled: bool, desc: str, *, total: int | None = None,
             leave: bool = True) -> Any:
    """A progress bar over cases on stderr: over ``items``, or to a ``total`` advanced by hand."""
    return tqdm(items, total=total, desc=desc, unit="case", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, leave=leave)


Inputs = dict[str, torch.Tensor | None]


class CaseDataset:
    """Cases with their cache: training items (random augmentation) and evaluation items (centred)."""

    def __init__(self, cases: Sequence[CaseRef], cache: CaseCache) -> None:
        self.cases = list(cases)
        self.cache = cache

    def __len__(self) -> int:
        return len(self.cases)

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.cases], dtype=np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> CaseDataset:
        return CaseDataset([self.cases[int(i)] for i in indices], self.cache)

    def _tensors(self, canvases: Mapping[str, Any], modalities: Sequence[str]) -> Inputs:
        return {m: torch.from_numpy(canvases[m][0])[None] if m in canvases and m in modalities else None
                for m in MODALITIES}

    def train_item(self, i: int, rng: np.random.Generator, shared_pad: bool = False) -> tuple[Inputs, torch.Tensor]:
        """Augmented inputs ``modality -> (1, C, X, Y, Z)`` (random pad, shared across sequences with
        ``shared_pad``; one of 6 flips) and label ``(1,)``."""
        canv = random_augment(rng, self.cache.load(self.cases[i]), self.cache.sizes, shared_pad=shared_pad)
        return self._tensors(canv, MODALITIES), torch.tensor([self.cases[i].label])

    def eval_item(self, i: int, modalities: Sequence[str] = MODALITIES) -> Inputs:
        """Validation/test inputs (resize rule + centred pad, no flip), ``None`` for modalities left out."""
        return self._tensors(center(self.cache.load(self.cases[i]), self.cache.sizes), modalities)


@torch.no_grad()
def predict_cases(model: Mome, ds: CaseDataset, indices: Iterable[int] | None = None,
                  modalities: Sequence[str] = MODALITIES, progress: bool = False, desc: str = "validate"
                  ) -> torch.Tensor:
    """Class-1 probabilities ``(N,)`` float64 of the cases ``indices`` (default all; the others stay 0) on
    centred inputs, in eval mode."""
    was_training = model.training
    model.eval()
    scores = torch.zeros(len(ds), dtype=torch.float64)
    for i in case_bar(range(len(ds)) if indices is None else indices, progress, desc, leave=False):
        logits = model(**ds.eval_item(i, modalities))
        scores[i] = torch.softmax(logits.double(), dim=1)[0, 1]
    model.train(was_training)
    return scores
