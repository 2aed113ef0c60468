"""The evaluation report: a self-contained HTML page (figures embedded as base64 PNG) and a Markdown twin
(figures linked), both made from the evaluation JSON: the command, the model card summary, and per cohort a
digest, the headline metrics, threshold metrics, subsets, subgroups, readers, Shapley, BI-RADS 4 transfer
and k-fold summaries.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

PARTIAL_AUROC_TEXT = (
    "Partial AUROC (McClish-standardised): pAUROC spec90 is the area under the ROC curve over "
    "FPR <= 0.1 (specificity >= 90 %), A, reported as (1 + (A - 0.005) / (0.1 - 0.005)) / 2, so chance is 0.5 "
    "and a perfect model 1 (scikit-learn's roc_auc_score(max_fpr=0.1)); pAUROC sens90 is the same over "
    "sensitivity >= 90 % (the area of specificity over sensitivity from 0.9 to 1).")


def _f(v: Any, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _ci(d: dict[str, Any], nd: int = 3) -> str:
    return f"{_f(d.get('value'), nd)} [{_f(d.get('ci_lower'), nd)}, {_f(d.get('ci_upper'), nd)}]"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _cohort_md(rec: dict[str, Any]) -> list[str]:
    m = rec["model"]
    out = [f"## {rec['name']}", "",
           f"{rec['n']} cases ({rec['n_positive']} malignant); {rec['n_failed']} failed predictions; "
           f"{rec['n_unlabelled']} predictions without a label.", ""]
    out += _table(["AUROC", "AUPRC", "pAUROC spec90", "pAUROC sens90"],
                  [[_ci(m[k]) for k in ("auroc", "auprc", "pauroc_spec90", "pauroc_sens90")]]) + [""]
    names = ["accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "mcc"]
    out += _table(["threshold", *names], [[_f(t["threshold"], 3), *(_ci(t[k]) for k in names)]
                                          for t in m["thresholds"]]) + [""]
    if rec["subsets"]:
        out += ["Missing-modality table (AUROC of each subset; paired bootstrap p against all sequences):", ""]
        out += _table(["subset", "n", "AUROC", "minus all", "p"],
                      [[r["subset"], str(r["n"]), _ci(r.get("auroc_a", {})), _ci(r.get("difference", {})),
                        _f(r.get("p_value"), 4)] for r in rec["subsets"]]) + [""]
    for c in rec["comparisons"]:
        out += [f"Paired comparison {c['a']} - {c['b']}: AUROC difference {_ci(c.get('difference', {}))}, "
                f"p = {_f(c.get('p_value'), 4)} (n={c['n']}).", ""]
    for col, d in rec["subgroups"].items():
        out += [f"Subgroups by {col}:", ""]
        out += _table(["group", "n (pos)", "AUROC", "AUPRC", "sensitivity", "specificity"],
                      [[r["group"], f"{r['n']} ({r['n_positive']})", _ci(r["auroc"]), _ci(r["auprc"]),
                        _ci(r["sensitivity"]), _ci(r["specificity"])] for r in d["rows"]]) + [""]
    for name, r in rec["readers"].items():
        out += [f"Reader {name} (positive at BI-RADS >= 4b, n={r['n']}): sensitivity "
                f"{_f(r['reader']['sensitivity'])}, specificity {_f(r['reader']['specificity'])}; model minus "
                f"reader F1 {_ci(r.get('f1_difference', {}))}, MCC {_ci(r.get('mcc_difference', {}))}.", ""]
    if rec.get("shapley"):
        sh = rec["shapley"]
        mods = [k for k in sh["overall"] if k != "n"]
        out += ["Global Shapley (mean |phi|):", ""]
        out += _table(["group", "n", *mods], [[g, str(sh[g]["n"]), *(_f(sh[g][k], 4) for k in mods)]
                                              for g in sh if g != "threshold"]) + [""]
    return out


def markdown(doc: dict[str, Any], figures: dict[str, dict[str, str]]) -> str:
    """The report as Markdown (figures as relative links)."""
    card = doc.get("model_card") or {}
    out = ["# MOME evaluation report", "", "Research use only; not for clinical decisions.", "",
           f"Command: `{doc.get('command', '')}`", "",
           f"Model: {card.get('name', 'n/a')} ({card.get('weights_sha256', '')[:12] or 'no card'}); "
           f"bootstrap {doc['settings']['n_resamples']} resamples, seed {doc['settings']['seed']}, "
           f"{100 * doc['settings']['level']:g} % percentile intervals; proportions with Clopper-Pearson intervals.",
           ""]
    extra = {k: v for k, v in doc["settings"].items() if k in ("sizes", "tta", "phantom_scale")}
    if extra:
        out += ["Reproduction settings: " + "; ".join(f"{k} {v}" for k, v in extra.items()) + ".", ""]
    out += [PARTIAL_AUROC_TEXT, ""]
    for rec in doc["cohorts"].values():
        out += _cohort_md(rec)
        out += [f"![{k}]({v})" for k, v in figures.get(rec["name"], {}).items()] + [""]
    for t in doc.get("birads4_transfer", []):
        if "error" in t:
            out += [f"## BI-RADS 4 operating point {t['source']} -> {t['target']}", "",
                    f"Not computed: {t['error']}", ""]
            continue
        out += [f"## BI-RADS 4 operating point {t['source']} -> {t['target']}", "",
                f"tau = {t['tau']:.4f} (100 % sensitivity on {t['source']}'s {t['source_birads4']['n']} BI-RADS 4 "
                f"cases). On {t['target']}: benign BI-RADS 4 downgraded {t['benign_downgraded']['k']}/"
                f"{t['benign_downgraded']['n']} {_ci(t['benign_downgraded'])}; cancers missed "
                f"{t['cancers_missed']['k']}/{t['cancers_missed']['n']} {_ci(t['cancers_missed'])}.", ""]
    for k in doc.get("kfold", []):
        out += [f"k-fold {k['task']}: AUROC {k['auroc_mean']:.3f} +- {k['auroc_sd']:.3f} over {k['folds']} folds.", ""]
    return "\n".join(out) + "\n"


def _md_to_html(md: str, figures_dir: Path) -> str:
    """The Markdown above rendered to HTML (headings, tables, paragraphs, embedded images)."""
    body: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if table:
            rows = [r.strip().strip("|").split(" | ") for r in table if not r.startswith("|---")]
            cells = [f"<tr>{''.join(f'<th>{html.escape(c)}</th>' for c in rows[0])}</tr>"]
            cells += [f"<tr>{''.join(f'<td>{html.escape(c)}</td>' for c in r)}</tr>" for r in rows[1:]]
            body.append("<table>" + "".join(cells) + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("!["):
            name = line[line.index("(") + 1:-1]
            data = base64.b64encode((figures_dir / name).read_bytes()).decode("ascii")
            body.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;margin:6px 0}"
             "td,th{border:1px solid #bbb;padding:2px 6px;font-size:13px}img{max-width:100%}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>MOME evaluation report</title>"
            f"<style>{style}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def write_report(doc: dict[str, Any], figures: dict[str, dict[str, str]], out_dir: Path) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` (self-contained) into ``out_dir`` (figures already there)."""
    md = markdown(doc, figures)
    (out_dir / "report.md").write_text(md, encoding="utf-8")
    (out_dir / "report.html").write_text(_md_to_html(md, out_dir), encoding="utf-8")
    return {"markdown": out_dir / "report.md", "html": out_dir / "report.html"}
