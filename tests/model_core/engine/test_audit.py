"""Audit log: one JSON line per run, >= 12 fields, append-only, no identifiers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_core.engine.audit import (
    REQUIRED_FIELDS,
    append_audit,
    array_digest,
    audit_record,
    default_audit_path,
    hash_label,
    read_audit,
    study_inputs,
    user_audit_path,
    validate_record,
)
from model_core.studies.study import ClinicalInfo, Study, Volume


def _study() -> Study:
    v = Volume(np.ones((4, 4, 2), np.float32), np.eye(4), source="/data/DOE_JANE_123/t2.nii.gz",
               meta={"reorientation": "LPS->RAS"})
    return Study(t2=v, clinical=ClinicalInfo(birads="4a"), study_id="DOE_JANE_123")


def test_record_has_the_required_fields_and_no_identifiers(tmp_path) -> None:
    study = _study()
    facts = {"study_key": hash_label(study.study_id), "inputs": study_inputs(study), "birads": "4a",
             "reader_decisions": {"count": 1, "roles": {"t2": 1}}}
    rec = audit_record(run_id="r1", status="ok", study_facts=facts, provenance={"device": "cpu", "dtype": "fp32"},
                       settings={"tta": "none"}, duration_s=0.5)
    assert len(REQUIRED_FIELDS) >= 12 and validate_record(rec) == []
    assert rec["inputs"]["t2"]["sha256"] == array_digest(study.t2.data, study.t2.affine)  # type: ignore[union-attr]
    assert rec["inputs"]["t2"]["reorientation"] == "LPS->RAS" and rec["nonfinite_voxels"] == 0
    path = tmp_path / "audit" / "log.jsonl"
    append_audit(path, rec)
    append_audit(path, {**rec, "run_id": "r2"})
    text = path.read_text()
    assert text.count("\n") == 2 and "DOE" not in text and "/data" not in text
    assert [r["run_id"] for r in read_audit(path)] == ["r1", "r2"]
    assert all(len(json.loads(line)) >= 12 for line in text.splitlines())


def test_digests_depend_on_content_and_geometry() -> None:
    a = np.zeros((2, 2, 2), np.float32)
    b = a.copy()
    b[0, 0, 0] = 1
    assert array_digest(a) != array_digest(b)
    assert array_digest(a, np.eye(4)) != array_digest(a, 2 * np.eye(4))
    assert hash_label("x") != hash_label("y") and hash_label("") is None and len(hash_label("x")) == 16  # type: ignore[arg-type]


def test_nonfinite_voxels_are_counted() -> None:
    s = _study()
    s.t2.data[0, 0, 0] = np.nan  # type: ignore[union-attr]
    assert study_inputs(s)["t2"]["nonfinite"] == 1


def test_audit_is_off_unless_asked(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("MOME_AUDIT_LOG", raising=False)
    assert default_audit_path() is None
    monkeypatch.setenv("MOME_AUDIT_LOG", str(tmp_path / "a.jsonl"))
    assert default_audit_path() == tmp_path / "a.jsonl"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert user_audit_path() == tmp_path / "state" / "napari-mome" / "audit.jsonl"


def test_validate_flags_missing_and_forbidden_fields() -> None:
    problems = validate_record({"schema": "x", "hostname": "h"})
    assert any("missing field 'timestamp'" in p for p in problems)
    assert any("hostname" in p for p in problems)


@pytest.mark.parametrize("status", ["cancelled", "error"])
def test_failed_runs_are_recorded_too(status: str) -> None:
    rec = audit_record(run_id="r", status=status, error="Cancelled")
    assert rec["status"] == status and rec["outputs"] == {} and validate_record(rec) == []
