"""Ranking statistics of many (labels, scores) rows from one sort: AUROC, average precision, partial AUROC,
and the ROC and precision-recall points.

Every row (a cohort, or one bootstrap resample of it) is sorted once by descending score; cases with equal
scores form a *tie group* and move together across a threshold. For a case at sorted position ``i`` in a
group ``[gs, ge]``, ``tp_before`` / ``tp_after`` count the positives ranked strictly above the group and
up to its end. From these:

* AUROC = sum over negatives of ``(tp_before + tp_after) / 2`` over ``P * N``: the Mann-Whitney U with
  half credit for ties (equal to the mid-rank formula).
* Average precision (AP, the area under the precision-recall curve as scikit-learn defines it) = sum over
  positives of the precision at the end of their tie group, over ``P``.
* ROC points are the tie-group ends ``(FP/N, TP/P)``, joined by straight lines (a tie group is a diagonal
  segment).

**Partial AUROC** (McClish standardisation). ``spec`` focus: the area under the ROC curve over
``FPR <= m`` (specificity >= ``1 - m``), ``A``, standardised as ``(1 + (A - m^2/2) / (m - m^2/2)) / 2``, so
that a chance curve gives 0.5 and a perfect one 1; this is scikit-learn's ``roc_auc_score(max_fpr=m)``.
``sens`` focus: the same on the curve with the axes swapped (``FNR <= m``, sensitivity >= ``1 - m``): the
area ``int_{1-m}^{1} specificity d(sensitivity)``, standardised the same way. It equals the ``spec`` pAUROC
of labels ``1 - y`` and scores ``-s``.

Shapes: ``y`` bool ``(R, N)``, ``s`` float ``(R, N)``; results ``(R,)``. A row with one class gives NaN.
Bootstrap resamples of one cohort need no sort of their own (:meth:`RankedRows.weighted`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RankedRows:
    """Rows in descending-score order with their cumulative counts (see the module docstring).

    Rows are either sorted one by one (:meth:`build`) or are bootstrap resamples of one cohort given as
    case multiplicities (:meth:`weighted`): then the cohort is sorted once, every row shares its order
    and tie groups, and a case counts as often as it was drawn (no per-resample sort).

    Attributes:
        s: scores in sorted order, ``(R, N)`` or ``(N,)`` (shared). wpos, wneg: ``(R, N)`` weight of the case
            at each position as a positive / a negative (0/1 for plain rows, multiplicities for resamples).
        cum_pos, cum_all: ``(R, N + 1)`` running sums of ``wpos`` and ``wpos + wneg`` (leading 0).
        group_start, group_end: first / last position of each position's tie group, ``(R, N)`` or ``(N,)``.
        is_end: True at the last position of each tie group (same shape as ``group_end``).
    """

    s: np.ndarray
    wpos: np.ndarray
    wneg: np.ndarray
    cum_pos: np.ndarray
    cum_all: np.ndarray
    group_start: np.ndarray
    group_end: np.ndarray
    is_end: np.ndarray

    @staticmethod
    def _groups(ss: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tie groups of sorted scores ``(..., N)``: start and end positions, and the end mask."""
        n = ss.shape[-1]
        pos = np.arange(n)
        start = np.ones(ss.shape, dtype=bool)
        start[..., 1:] = ss[..., 1:] != ss[..., :-1]
        end = np.ones(ss.shape, dtype=bool)
        end[..., :-1] = start[..., 1:]
        gs = np.maximum.accumulate(np.where(start, pos, 0), axis=-1)
        ge = np.flip(np.minimum.accumulate(np.flip(np.where(end, pos, n - 1), -1), axis=-1), -1)
        return gs, ge, end

    @classmethod
    def _from(cls, ss: np.ndarray, wpos: np.ndarray, wneg: np.ndarray) -> RankedRows:
        r, n = wpos.shape
        cum_pos = np.zeros((r, n + 1))
        cum_all = np.zeros((r, n + 1))
        np.cumsum(wpos, axis=1, out=cum_pos[:, 1:])
        np.cumsum(wpos + wneg, axis=1, out=cum_all[:, 1:])
        gs, ge, end = cls._groups(ss)
        return cls(ss, wpos, wneg, cum_pos, cum_all, gs, ge, end)

    @classmethod
    def build(cls, labels: np.ndarray, scores: np.ndarray) -> RankedRows:
        """Sort ``(R, N)`` (or ``(N,)``, taken as one row) labels and scores row by row."""
        y = np.atleast_2d(np.asarray(labels).astype(bool))
        s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
        if y.shape != s.shape:
            raise ValueError(f"labels {y.shape} and scores {s.shape} differ in shape")
        order = np.argsort(-s, axis=1, kind="stable")
        ys = np.take_along_axis(y, order, 1).astype(np.float64)
        return cls._from(np.take_along_axis(s, order, 1), ys, 1.0 - ys)

    @classmethod
    def weighted(cls, labels: np.ndarray, scores: np.ndarray, counts: np.ndarray,
                 order: np.ndarray | None = None) -> RankedRows:
        """Resamples of one cohort: ``labels``, ``scores`` ``(N,)``; ``counts`` ``(R, N)`` multiplicities of
        each case (see :func:`model_core.evaluation.bootstrap.replicate_counts`); ``order``: the cohort's
        descending-score order when already known."""
        y = np.asarray(labels).astype(bool).ravel()
        s = np.asarray(scores, dtype=np.float64).ravel()
        if order is None:
            order = np.argsort(-s, kind="stable")
        w = np.asarray(counts, dtype=np.float64)[:, order]
        ys = y[order]
        return cls._from(s[order], w * ys, w * ~ys)

    @staticmethod
    def _at(cum: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return cum[:, idx] if idx.ndim == 1 else np.take_along_axis(cum, idx, 1)

    @property
    def n(self) -> np.ndarray:
        """``(R,)`` cases per row."""
        return self.cum_all[:, -1]

    @property
    def n_pos(self) -> np.ndarray:
        """``(R,)`` positives per row."""
        return self.cum_pos[:, -1]

    @property
    def tp_before(self) -> np.ndarray:
        return self._at(self.cum_pos, self.group_start)

    @property
    def tp_after(self) -> np.ndarray:
        return self._at(self.cum_pos, self.group_end + 1)

    @property
    def count_after(self) -> np.ndarray:
        return self._at(self.cum_all, self.group_end + 1)

    def _end_mask(self, row: int) -> np.ndarray:
        return self.is_end if self.is_end.ndim == 1 else self.is_end[row]

    @property
    def n_neg(self) -> np.ndarray:
        return self.n - self.n_pos

    def _valid(self, values: np.ndarray) -> np.ndarray:
        ok = (self.n_pos > 0) & (self.n_neg > 0)
        return np.where(ok, values, np.nan)

    def auroc(self) -> np.ndarray:
        """``(R,)`` AUROC (ties count one half)."""
        credit = (self.wneg * (self.tp_before + self.tp_after)).sum(axis=1) / 2.0
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._valid(credit / (self.n_pos * self.n_neg))

    def average_precision(self) -> np.ndarray:
        """``(R,)`` average precision (scikit-learn's ``average_precision_score``)."""
        cnt = self.count_after
        precision = self.tp_after / np.where(cnt > 0, cnt, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._valid((self.wpos * precision).sum(axis=1) / self.n_pos)

    def _segments(self) -> tuple[np.ndarray, ...]:
        """ROC segments ending at each tie-group end: ``x0, y0, x1, y1`` (``(R, N)``, valid where is_end)."""
        tp_before, tp_after = self.tp_before, self.tp_after
        fp_before = self._at(self.cum_all, self.group_start) - tp_before
        fp_after = self.count_after - tp_after
        with np.errstate(invalid="ignore", divide="ignore"):
            nn = self.n_neg[:, None].astype(np.float64)
            pp = self.n_pos[:, None].astype(np.float64)
            return fp_before / nn, tp_before / pp, fp_after / nn, tp_after / pp

    def partial_auroc(self, max_fpr: float = 0.1, focus: str = "spec") -> np.ndarray:
        """``(R,)`` McClish-standardised partial AUROC over ``FPR <= max_fpr`` (``focus="spec"``) or over
        ``FNR <= max_fpr`` (``focus="sens"``, i.e. sensitivity >= ``1 - max_fpr``)."""
        if not 0 < max_fpr <= 1:
            raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr}")
        x0, y0, x1, y1 = self._segments()
        if focus == "sens":
            x0, y0, x1, y1 = 1 - y1, 1 - x1, 1 - y0, 1 - x0
        elif focus != "spec":
            raise ValueError(f"focus must be 'spec' or 'sens', got {focus!r}")
        m = max_fpr
        xe = np.minimum(x1, m)
        with np.errstate(invalid="ignore", divide="ignore"):
            ye = np.where(x1 > x0, y0 + (y1 - y0) * (xe - x0) / (x1 - x0), y1)
        area = np.where(self.is_end & (x0 < m), (xe - x0) * (y0 + ye) / 2.0, 0.0).sum(axis=1)
        lo, hi = 0.5 * m * m, m
        return self._valid(0.5 * (1.0 + (area - lo) / (hi - lo)))

    def roc_points(self, row: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(fpr, tpr)`` of one row, from ``(0, 0)`` through every tie-group end to ``(1, 1)``."""
        e = self._end_mask(row)
        tp = self.cum_pos[row, 1:][e]
        fp = self.cum_all[row, 1:][e] - tp
        n_pos, n_neg = max(float(self.n_pos[row]), 1.0), max(float(self.n_neg[row]), 1.0)
        return np.concatenate([[0.0], fp / n_neg]), np.concatenate([[0.0], tp / n_pos])

    def pr_points(self, row: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(recall, precision)`` of one row at every tie-group end (increasing recall)."""
        e = self._end_mask(row)
        tp = self.cum_pos[row, 1:][e]
        cnt = self.cum_all[row, 1:][e]
        keep = cnt > 0
        return tp[keep] / max(float(self.n_pos[row]), 1.0), tp[keep] / cnt[keep]

    def confusion(self, threshold: float) -> dict[str, np.ndarray]:
        """Confusion counts ``tp, fp, tn, fn`` (``(R,)``) with ``positive = score > threshold``."""
        if self.s.ndim == 1:
            k = np.full(self.cum_pos.shape[0], int(np.searchsorted(-self.s, -threshold, side="left")))
        else:
            k = (self.s > threshold).sum(axis=1)
        tp = self.cum_pos[np.arange(k.size), k]
        fp = self.cum_all[np.arange(k.size), k] - tp
        return {"tp": tp, "fp": fp, "tn": self.n_neg - fp, "fn": self.n_pos - tp}


def roc_on_grid(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """TPR of a ROC curve (points joined linearly; at a vertical step the top) at ``grid`` FPR values."""
    keep = np.append(fpr[1:] != fpr[:-1], True)
    return np.interp(grid, fpr[keep], tpr[keep])


def pr_on_grid(recall: np.ndarray, precision: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Precision at ``grid`` recall values: that of the first threshold reaching the recall (a step curve)."""
    idx = np.minimum(np.searchsorted(recall, grid, side="left"), recall.size - 1)
    return precision[idx]
