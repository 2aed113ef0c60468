"""``mome evaluate`` end to end on synthetic prediction files: JSON, figures, a self-contained report,
failed and resumed lines, scores CSVs, and no scikit-learn at run time."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_core.errors import MomeError
from model_core.evaluation.cohort_eval import EvaluateSettings
from model_core.evaluation.predictions import join_labels, read_predictions
from model_core.evaluation.ranking import RankedRows

SUBSETS = ["dce", "dwi", "t2", "dce+dwi", "dce+t2", "dwi+t2", "dce+dwi+t2", "none"]


def _write(root: Path, site: str, n: int, seed: int) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    z = rng.normal(size=n) + 1.6 * y
    p = 1 / (1 + np.exp(-z))
    birads = np.where(rng.random(n) < 0.5, rng.choice(["4a", "4b", "4c"], n), rng.choice(["3", "5"], n))
    preds, man = root / f"{site}.jsonl", root / f"{site}.csv"
    with preds.open("w") as fh:
        fh.write(json.dumps({"case_id": "c1", "probability": 0.123, "subsets": {}, "shapley": {}}) + "\n")
        for i in range(n):
            if i == 5:
                fh.write(json.dumps({"case_id": f"c{i}", "error": "StudyError: broken"}) + "\n")
                continue
            sub = {s: float(1 / (1 + np.exp(-(z[i] * 0.6 + rng.normal(0, 0.7))))) for s in SUBSETS}
            sub["dce+dwi+t2"], sub["none"] = float(p[i]), 0.4
            sub["t2"] = None if i % 7 == 0 else sub["t2"]
            fh.write(json.dumps({"case_id": f"c{i}", "probability": float(p[i]), "subsets": sub,
                                 "shapley": {"dce": float(z[i] / 10), "dwi": 0.02, "t2": -0.01}}) + "\n")
        fh.write('{"case_id": "c9", "probab')  # a torn last line
    with man.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "path", "malignant", "birads", "age", "reader1"])
        for i in range(n):
            w.writerow([f"c{i}", f"s{i}", int(y[i]), birads[i], int(rng.integers(25, 80)), "5" if y[i] else "3"])
    return preds, man, y, p


def test_predictions_reader_last_line_wins_errors_and_torn_lines(tmp_path: Path) -> None:
    preds, man, y, p = _write(tmp_path, "ds1", 40, 0)
    recs, failed = read_predictions(preds)
    assert recs["c1"]["scores"]["model"] == pytest.approx(p[1])  # the later line of c1 counts
    assert failed == [{"case_id": "c5", "error": "StudyError: broken"}]
    c = join_labels("ds1", recs, failed, man)
    assert c.labels.size == 39 and np.isnan(c.scores["subset:t2"][0])
    with pytest.raises(MomeError, match="label column"):
        join_labels("ds1", recs, failed, man, "nope")


def test_scores_csv_with_labels(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("case_id,label,score,other\na,1,0.9,0.2\nb,0,0.1,0.3\nc,1,0.4,0.5\n")
    recs, _ = read_predictions(f)
    c = join_labels("s", recs, [], None)
    assert list(c.scores) == ["model", "other"] and c.labels.tolist() == [True, False, True]


def test_evaluate_cli_writes_json_figures_and_a_self_contained_report(tmp_path: Path) -> None:
    from model_core.cli.main import main

    p1, m1, y1, s1 = _write(tmp_path, "ds1", 160, 0)
    p2, m2, _, _ = _write(tmp_path, "ds2", 120, 1)
    out = tmp_path / "ev"
    rc = main(["evaluate", f"ds1={p1}", f"ds2={p2}", "--labels", str(m1), "--labels", str(m2), "--out", str(out),
               "--bootstrap", "200", "--subgroup", "age=40,60", "--subgroup", "birads4", "--reader", "reader1",
               "--transfer", "ds1:ds2", "--threshold", "0.3", "--compare", "subset:dce,subset:dwi"])
    assert rc == 0
    doc = json.loads((out / "evaluation.json").read_text())
    d1 = doc["cohorts"]["ds1"]
    keep = np.arange(160) != 5
    assert d1["n"] == 159 and d1["n_failed"] == 1
    assert d1["model"]["auroc"]["value"] == pytest.approx(RankedRows.build(y1[keep], s1[keep]).auroc()[0], abs=1e-12)
    assert [t["threshold"] for t in d1["model"]["thresholds"]] == [0.5, 0.3]
    subs = {r["subset"]: r for r in d1["subsets"]}
    assert set(subs) == set(SUBSETS) - {"none"} and subs["dce+dwi+t2"]["p_value"] == 1.0
    assert subs["t2"]["n"] == 159 - len([i for i in range(0, 160, 7) if i != 5])
    assert [r["group"] for r in d1["subgroups"]["age"]["rows"]] == ["<40", "40-60", ">=60"]
    assert set(d1["decision_curves"]) == {"treat", "avoid_biopsy_birads4"}
    assert d1["readers"]["reader1"]["reader"]["sensitivity"] == 1.0
    assert doc["birads4_transfer"][0]["cancers_missed"]["n"] > 0
    assert doc["cohorts"]["ds1"]["comparisons"][0]["a"] == "subset:dce"
    for fig in ("roc_pr", "decision", "subsets", "shapley", "forest"):
        assert (out / f"ds1_{fig}.png").stat().st_size > 1000 and (out / f"ds1_{fig}.svg").is_file()
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 10 and "src=\"http" not in html and "ds1_roc_pr.png)" not in html
    md = (out / "report.md").read_text()
    assert "![roc_pr](ds1_roc_pr.png)" in md and "BI-RADS 4 operating point ds1 -> ds2" in md


def test_evaluate_does_not_import_sklearn(tmp_path: Path) -> None:
    p1, m1, _, _ = _write(tmp_path, "ds1", 60, 0)
    code = ("import sys; from model_core.cli.main import main; "
            f"rc = main(['evaluate', '{p1}', '--labels', '{m1}', '--out', '{tmp_path / 'ev'}', '--bootstrap', '50']); "
            "assert rc == 0; assert not [m for m in sys.modules if m.startswith('sklearn')], 'sklearn imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)


def test_kfold_summary_and_another_model_column(tmp_path: Path) -> None:
    from model_core.evaluation.kfold_summary import kfold_summary

    cv = tmp_path / "tnbc" / "cv_summary.json"
    cv.parent.mkdir()
    cv.write_text(json.dumps({f"runs/fold{i}": {"fold": i, "best_val_auroc": a} for i, a in
                              enumerate([0.8, 0.7, 0.9])} | {"cross_validation": {"folds": 3}}))
    k = kfold_summary(cv)
    assert k["task"] == "tnbc" and k["folds"] == 3 and k["auroc_mean"] == pytest.approx(0.8)
    assert k["auroc_sd"] == pytest.approx(0.1)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(MomeError, match="fewer than two folds"):
        kfold_summary(tmp_path / "bad.json")

    from model_core.cli.main import main

    p1, m1, _, _ = _write(tmp_path, "ds1", 80, 0)
    other = tmp_path / "other.csv"
    recs, _ = read_predictions(p1)
    other.write_text("case_id,score\n" + "".join(f"{c},{0.5 if i % 2 else r['scores']['model']}\n"
                                                 for i, (c, r) in enumerate(recs.items())))
    out = tmp_path / "ev"
    assert main(["evaluate", str(p1), "--labels", str(m1), "--other", f"resnet={other}", "--compare", "model,resnet",
                 "--kfold", f"TNBC={cv}", "--out", str(out), "--bootstrap", "100", "--no-plots"]) == 0
    doc = json.loads((out / "evaluation.json").read_text())
    cmp = doc["cohorts"]["ds1"]["comparisons"][0]
    assert (cmp["a"], cmp["b"], cmp["n"]) == ("model", "resnet", 79)
    assert cmp["difference"]["value"] > 0 and 0 < cmp["p_value"] <= 1
    assert doc["kfold"][0]["task"] == "TNBC" and "k-fold TNBC: AUROC 0.800 +- 0.100" in (out / "report.md").read_text()


def test_cohort_by_a_column_and_a_one_class_cohort(tmp_path: Path) -> None:
    from model_core.evaluation.evaluation_run import Inputs, evaluate_inputs

    p1, m1, y, _ = _write(tmp_path, "ds1", 120, 0)
    cohorts = evaluate_inputs(Inputs([("all", str(p1))], (str(m1),), cohort_by="birads"),
                              EvaluateSettings(n_resamples=50))["cohorts"]
    assert set(cohorts) == {"3", "4a", "4b", "4c", "5"} and sum(c["n"] for c in cohorts.values()) == 119
    only = tmp_path / "benign.csv"
    only.write_text("case_id,label,score\na,0,0.1\nb,0,0.3\n")
    with pytest.raises(MomeError, match="one class"):
        evaluate_inputs(Inputs([("b", str(only))]), EvaluateSettings(n_resamples=50))
