"""Exact Shapley values over the three modalities, and global Shapley over many results.

Players are the modalities (DCE, DWI, T2); the value of a coalition ``S`` is the malignancy probability
with only the modalities in ``S``; ``v(∅)`` is whatever the caller puts under ``"none"``: the Predictor
uses the model's mean probability over the card's reference cohort (SHAP's convention,
:mod:`model_core.engine.reference`), or the CLS-only forward when asked. With ``n`` players

    phi_i = sum over S ⊆ N \\ {i} of |S|! (n - |S| - 1)! / n! * (v(S ∪ {i}) - v(S)),

evaluated exactly (all ``2^n`` values, float64). Efficiency holds by construction:
``sum_i phi_i = v(N) - v(∅)``.

A modality the study lacks is a *null player*: ``v(S) := v(S ∩ available)``, so its value is exactly 0 and
the others' values are the Shapley values of the game on the available modalities.

Global Shapley (the paper's Fig. 5m-n) is the mean over a cohort of per-study values, reported for all
studies and split by predicted class (``p >= threshold`` = predicted malignant).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from model_core.engine.subsets import canonical, subset_key
from model_core.network.config import MODALITIES


def _value_table(values: Mapping[Any, float | None], players: Sequence[str]) -> dict[frozenset[str], float]:
    table: dict[frozenset[str], float] = {}
    for k, v in values.items():
        if v is not None:
            table[frozenset(canonical(k))] = float(v)
    missing = [subset_key(s) for r in range(len(players) + 1) for s in itertools.combinations(players, r)
               if frozenset(s) not in table]
    if missing:
        raise ValueError(f"Shapley needs v(S) for every subset of {tuple(players)}; missing {missing}")
    return table


def shapley_values(
    values: Mapping[Any, float | None], players: Sequence[str] = MODALITIES, available: Iterable[str] | None = None
) -> dict[str, float]:
    """Exact Shapley values.

    Args:
        values: ``v(S)`` keyed by subset (``"dce+t2"``, ``"none"``, a tuple or frozenset of names). With
            ``available`` given, only subsets of it are needed (``None`` values are ignored).
        players: every player (default the three modalities).
        available: players present; the others are null players (``v(S) = v(S ∩ available)``, value 0).

    Returns:
        player -> phi (float64 as Python float), in ``players`` order.
    """
    players = tuple(players)
    avail = tuple(p for p in players if available is None or p in set(available))
    table = _value_table(values, avail)
    n = len(avail)
    phi = {p: 0.0 for p in players}
    for i in avail:
        others = [p for p in avail if p != i]
        total = 0.0
        for r in range(n):
            w = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for s in itertools.combinations(others, r):
                total += w * (table[frozenset(s) | {i}] - table[frozenset(s)])
        phi[i] = total
    return phi


def efficiency(phi: Mapping[str, float], values: Mapping[Any, float | None],
               available: Iterable[str] | None = None) -> dict[str, float]:
    """The identity the widget shows: ``v_full``, ``v_empty``, ``sum_phi`` and ``error = sum_phi - (v_full -
    v_empty)`` (``v_full`` = value of all *available* modalities)."""
    avail = canonical(available if available is not None else MODALITIES)
    table = {canonical(k): float(v) for k, v in values.items() if v is not None}
    v_full, v_empty = table[avail], table[()]
    s = float(sum(phi.values()))
    return {"v_full": v_full, "v_empty": v_empty, "sum_phi": s, "error": s - (v_full - v_empty)}


def _record(r: Any) -> tuple[float, Mapping[str, float]]:
    """(probability, shapley) from a :class:`~model_core.engine.result.Result` or its ``to_dict()``."""
    if isinstance(r, Mapping):
        return float(r["probability"]), r["shapley"]
    return float(r.probability), r.shapley


def global_shapley(results: Iterable[Any], threshold: float = 0.5,
                   players: Sequence[str] = MODALITIES) -> dict[str, dict[str, Any]]:
    """Mean Shapley values over many results, overall and split by predicted class.

    Args:
        results: :class:`~model_core.engine.result.Result` objects or their dicts (``probability``, ``shapley``).
        threshold: predicted malignant when ``probability >= threshold``.

    Returns:
        ``{"all" | "predicted_malignant" | "predicted_benign": {"n", "mean": {m: .}, "mean_abs": {m: .},
        "std": {m: .}, "share_negative": {m: .}}}`` (``share_negative``: the share of results whose value
        for ``m`` is below 0, i.e. pushes towards benign); groups with no member have ``n = 0`` and empty
        dicts.
    """
    groups: dict[str, list[list[float]]] = {"all": [], "predicted_malignant": [], "predicted_benign": []}
    for r in results:
        p, phi = _record(r)
        row = [float(phi.get(m, 0.0)) for m in players]
        groups["all"].append(row)
        groups["predicted_malignant" if p >= threshold else "predicted_benign"].append(row)
    out: dict[str, dict[str, Any]] = {}
    for name, rows in groups.items():
        if not rows:
            out[name] = {"n": 0, "mean": {}, "mean_abs": {}, "std": {}, "share_negative": {}}
            continue
        a = np.asarray(rows, dtype=np.float64)
        out[name] = {
            "n": len(rows),
            "mean": dict(zip(players, a.mean(0).tolist(), strict=True)),
            "mean_abs": dict(zip(players, np.abs(a).mean(0).tolist(), strict=True)),
            "std": dict(zip(players, a.std(0).tolist(), strict=True)),
            "share_negative": dict(zip(players, (a < 0).mean(0).tolist(), strict=True)),
        }
    return out
