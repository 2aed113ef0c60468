"""write_cohort (CSV, per-case seeds, resume, workers) and the ``phantom`` CLI subcommand."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from model_core.cli.phantom import add_subparser
from model_core.phantom import case_seed, generate_study, write_cohort
from model_core.phantom.cohort import COLUMNS

SCALE = 0.3


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_case_seed_is_deterministic_and_spread() -> None:
    seeds = [case_seed(7, i) for i in range(500)]
    assert seeds == [case_seed(7, i) for i in range(500)]
    assert len(set(seeds)) == 500 and all(0 <= s < 2**32 for s in seeds)
    assert case_seed(8, 0) != case_seed(7, 0)


def test_write_cohort_csv_and_regeneration(tmp_path: Path) -> None:
    csv_path = write_cohort(
        3, "ds3", seed=5, out_dir=tmp_path, scale=SCALE, formats=("nifti",), progress=False
    )
    rows = _rows(csv_path)
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 3
    assert json.loads((tmp_path / "cohort.json").read_text())["site"] == "ds3"
    for i, row in enumerate(rows):
        assert int(row["index"]) == i and int(row["seed"]) == case_seed(5, i)
        assert (tmp_path / row["path"] / "study.json").is_file() and row["dicom_path"] == ""
        assert row["site"] == "ds3" and row["n_post"] == "6"
        if row["malignant"] == "0":
            assert row["tnbc"] == "0" and row["pcr"] == ""
        # any case can be regenerated alone from its seed
        again = generate_study(int(row["seed"]), "ds3", scale=SCALE).labels()
        assert {k: str(v) for k, v in again.items() if k in row} == {k: row[k] for k in again if k in row}
    # resume: existing cases are kept as they are
    before = (tmp_path / rows[0]["path"] / "dce_pre.nii.gz").stat().st_mtime_ns
    write_cohort(3, "ds3", seed=5, out_dir=tmp_path, scale=SCALE, formats=("nifti",), progress=False)
    assert (tmp_path / rows[0]["path"] / "dce_pre.nii.gz").stat().st_mtime_ns == before


def test_workers_give_the_same_cohort(tmp_path: Path) -> None:
    one = write_cohort(
        2, "ds1", seed=3, out_dir=tmp_path / "a", scale=SCALE, formats=("nifti",), progress=False
    )
    two = write_cohort(
        2, "ds1", seed=3, out_dir=tmp_path / "b", workers=2, scale=SCALE, formats=("nifti",), progress=False
    )
    assert _rows(one) == _rows(two)
    import nibabel as nib

    for rel in ("case_00000/nifti/dce_post3.nii.gz", "case_00001/nifti/dwi_b1000.nii.gz"):
        a = np.asarray(nib.load(str(tmp_path / "a" / rel)).dataobj)
        b = np.asarray(nib.load(str(tmp_path / "b" / rel)).dataobj)
        assert a.tobytes() == b.tobytes()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        write_cohort(1, "ds1", out_dir="unused", formats=("png",))
    with pytest.raises(ValueError):
        write_cohort(1, "nowhere", out_dir="unused")


def test_cli_subcommand(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="mome")
    add_subparser(parser.add_subparsers(dest="command"))
    argv = ["phantom", "--n", "1", "--site", "ds2", "--seed", "4", "--out", str(tmp_path)]
    args = parser.parse_args([*argv, "--formats", "nifti,dicom", "--scale", str(SCALE), "--no-progress"])
    assert args.formats == ("nifti", "dicom") and args.workers == 1
    assert args.func(args) == 0
    (row,) = _rows(tmp_path / "cohort.csv")
    assert (tmp_path / row["dicom_path"]).is_dir() and row["seed"] == str(case_seed(4, 0))
    with pytest.raises(SystemExit):
        parser.parse_args(["phantom", "--out", str(tmp_path), "--formats", "png"])
    with pytest.raises(SystemExit):
        parser.parse_args(["phantom", "--out", str(tmp_path), "--n", "0"])
