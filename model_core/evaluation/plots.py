"""Figures of an evaluation (matplotlib, Agg backend; PNG and SVG): ROC and PR curves with bootstrap bands
and reader points, decision curves, the missing-modality bars, global Shapley and a subgroup forest plot.

Each function takes the JSON record of :func:`model_core.evaluation.cohort_eval.evaluate_cohort` and writes
``<stem>.png`` and ``<stem>.svg`` under ``out_dir``; it returns the PNG path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

FORMATS = ("png", "svg")


def _save(fig: Figure, out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for ext in FORMATS:
        fig.savefig(out_dir / f"{stem}.{ext}", dpi=110, bbox_inches="tight", metadata={"Date": None}
                    if ext == "svg" else None)
    plt.close(fig)
    return out_dir / f"{stem}.png"


def roc_pr(rec: dict[str, Any], out_dir: Path, stem: str) -> Path:
    """ROC and PR curves side by side, with bands and reader points."""
    m = rec["model"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4.2))
    roc, pr = m["roc_curve"], m["pr_curve"]
    a.fill_between(roc["band"]["grid"], roc["band"]["lower"], roc["band"]["upper"], alpha=0.25, lw=0)
    a.plot(roc["fpr"], roc["tpr"], lw=1.5, label=f"model AUROC {m['auroc']['value']:.3f}")
    a.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    b.fill_between(pr["band"]["grid"], pr["band"]["lower"], pr["band"]["upper"], alpha=0.25, lw=0, step="pre")
    b.step(pr["recall"], pr["precision"], where="pre", lw=1.5, label=f"model AUPRC {m['auprc']['value']:.3f}")
    b.axhline(rec["n_positive"] / rec["n"], ls=":", c="grey", lw=1)
    for name, r in rec.get("readers", {}).items():
        a.plot(r["reader"]["fpr"], r["reader"]["sensitivity"], "o", label=f"{name} (>= 4b)")
        b.plot(r["reader"]["sensitivity"], r["reader"]["ppv"], "o", label=name)
    a.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC, {rec['name']}", xlim=(0, 1), ylim=(0, 1.01))
    b.set(xlabel="recall", ylabel="precision", title=f"PR, {rec['name']}", xlim=(0, 1), ylim=(0, 1.01))
    a.legend(loc="lower right", fontsize=8)
    b.legend(loc="lower left", fontsize=8)
    return _save(fig, out_dir, stem)


def decision(rec: dict[str, Any], out_dir: Path, stem: str) -> Path:
    """Net benefit curves with bands and reference strategies."""
    curves = rec["decision_curves"]
    fig, axes = plt.subplots(1, len(curves), figsize=(4.6 * len(curves), 4), squeeze=False)
    for ax, (kind, d) in zip(axes[0], curves.items(), strict=True):
        t = d["thresholds"]
        ax.fill_between(t, d["ci_lower"], d["ci_upper"], alpha=0.25, lw=0)
        ax.plot(t, d["model"], label="model")
        refs = ("treat_all", "treat_none") if d["kind"] == "treat" else ("biopsy_all", "avoid_all")
        for r in refs:
            ax.plot(t, d[r], ls="--", lw=1, label=r.replace("_", " "))
        top = max(max(d["model"]), 0.01)
        ax.set(ylim=(-0.05 * top - 0.02, top * 1.15), xlabel="threshold probability", ylabel="net benefit",
               title=f"{kind.replace('_', ' ')}, {rec['name']} (n={d['n']})")
        ax.legend(fontsize=8)
    return _save(fig, out_dir, stem)


def subset_bars(rec: dict[str, Any], out_dir: Path, stem: str) -> Path:
    """AUROC of every modality subset with its interval."""
    rows = [r for r in rec["subsets"] if "auroc_a" in r]
    fig, ax = plt.subplots(figsize=(6, 0.45 * max(len(rows), 1) + 1.2))
    for i, r in enumerate(rows):
        v = r["auroc_a"]
        ax.barh(i, v["value"], color="C0", alpha=0.7)
        ax.errorbar(v["value"], i, xerr=[[v["value"] - v["ci_lower"]], [v["ci_upper"] - v["value"]]], c="k", capsize=3)
    ax.set_yticks(range(len(rows)), [r["subset"] for r in rows])
    lowers = [r["auroc_a"]["ci_lower"] for r in rows]
    low = min([0.4] + [x - 0.05 for x in lowers if x == x])  # x == x: not NaN
    ax.set(xlim=(max(low, 0.0), 1.0), xlabel="AUROC", title=f"modality subsets, {rec['name']}")
    return _save(fig, out_dir, stem)


def shapley(rec: dict[str, Any], out_dir: Path, stem: str) -> Path:
    """Mean |phi| per sequence, by group."""
    sh = rec["shapley"]
    groups = [g for g in ("overall", "true_benign", "true_malignant", "predicted_benign", "predicted_malignant")
              if sh[g]["n"]]
    mods = [k for k in sh["overall"] if k != "n"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    w = 0.8 / len(mods)
    for j, mod in enumerate(mods):
        ax.bar([i + j * w for i in range(len(groups))], [sh[g][mod] for g in groups], w, label=mod)
    ax.set_xticks([i + w * (len(mods) - 1) / 2 for i in range(len(groups))],
                  [f"{g.replace('_', ' ')}\n(n={sh[g]['n']})" for g in groups], fontsize=8)
    ax.set(ylabel="mean |Shapley value|", title=f"global Shapley, {rec['name']}")
    ax.legend(fontsize=8)
    return _save(fig, out_dir, stem)


def forest(rec: dict[str, Any], out_dir: Path, stem: str) -> Path:
    """Subgroup AUROCs with intervals (one line per subgroup)."""
    lines = [(f"{col}: {r['group']} (n={r['n']}, {r['n_positive']}+)", r["auroc"])
             for col, d in rec["subgroups"].items() for r in d["rows"]]
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(lines), 1) + 1.2))
    for i, (_, v) in enumerate(lines):
        if v["value"] is not None and v["value"] == v["value"]:
            ax.errorbar(v["value"], -i, xerr=[[v["value"] - v["ci_lower"]], [v["ci_upper"] - v["value"]]],
                        fmt="s", c="C0", capsize=3)
    ax.axvline(rec["model"]["auroc"]["value"], ls=":", c="grey")
    ax.set_yticks([-i for i in range(len(lines))], [t for t, _ in lines], fontsize=8)
    ax.set(xlabel="AUROC", title=f"subgroups, {rec['name']}")
    return _save(fig, out_dir, stem)


def cohort_figures(rec: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Every figure the record supports: ``{figure: png file name}``."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in rec["name"])
    figs = {"roc_pr": roc_pr(rec, out_dir, f"{safe}_roc_pr"), "decision": decision(rec, out_dir, f"{safe}_decision")}
    if any("auroc_a" in r for r in rec["subsets"]):
        figs["subsets"] = subset_bars(rec, out_dir, f"{safe}_subsets")
    if rec.get("shapley"):
        figs["shapley"] = shapley(rec, out_dir, f"{safe}_shapley")
    if rec["subgroups"]:
        figs["forest"] = forest(rec, out_dir, f"{safe}_forest")
    return {k: v.name for k, v in figs.items()}
