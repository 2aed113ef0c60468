"""Hardening item 4: a small deflated DICOM file that inflates to gigabytes is refused before pydicom
inflates it (the check streams the inflation in bounded chunks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian

from model_core.errors import StudyReadError
from model_core.studies import dicom_bounds, read_volume
from tests.model_core.studies.builders import canonical_phantom, uid, write_slice


def _deflated_series(folder: Path, padding: int) -> list[Path]:
    """A 5-slice series saved deflated; each slice carries ``padding`` zero bytes in a private element."""
    vol = canonical_phantom((6, 7, 5))
    series = uid("deflated", padding)
    paths = []
    for k in range(vol.shape[2]):
        path = write_slice(folder / f"s{k}.dcm", vol[:, :, k].T, series_uid=series, ipp=(0, 0, 3.0 * k),
                           iop=(1, 0, 0, 0, 1, 0), pixel_spacing=(1, 1), instance=k + 1,
                           private=[(0x0011, 0x0010, "LO", "PAD"), (0x0011, 0x1000, "OB", bytes(padding))])
        ds = dcmread(path)
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def test_deflated_series_within_the_limit_reads(tmp_path: Path) -> None:
    _deflated_series(tmp_path, padding=1000)
    vol = read_volume(tmp_path)
    assert vol.data.shape == (6, 7, 5)
    assert sorted(vol.data.ravel()) == sorted(canonical_phantom((6, 7, 5)).astype(np.float32).ravel())


def test_deflate_bomb_refused_before_inflating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _deflated_series(tmp_path, padding=8 << 20)  # each file is a few KB, inflates to 8 MiB
    assert max(p.stat().st_size for p in paths) < 64 << 10
    monkeypatch.setattr(dicom_bounds, "MAX_INFLATED_BYTES", 4 << 20)
    with pytest.raises(StudyReadError, match="MOME_MAX_DICOM_INFLATED_BYTES"):
        read_volume(tmp_path)


def test_damaged_element_length_does_not_allocate_it(tmp_path: Path) -> None:
    """A 4-byte length field set to ~2 GiB in a 3 KB file: refused without asking for the 2 GiB
    (pydicom's ``file.read(length)`` on a buffered file would allocate it up front)."""
    import struct

    from model_core.bench.read import traced_peak

    vol = canonical_phantom((6, 7, 5))
    series = uid("length")
    for k in range(vol.shape[2]):
        path = write_slice(tmp_path / f"s{k}.dcm", vol[:, :, k].T, series_uid=series, ipp=(0, 0, 3.0 * k),
                           iop=(1, 0, 0, 0, 1, 0), pixel_spacing=(1, 1), instance=k + 1,
                           private=[(0x0011, 0x0010, "LO", "PAD"), (0x0011, 0x1000, "OB", b"\0" * 16)])
    raw = bytearray(path.read_bytes())
    tag = struct.pack("<HH", 0x0011, 0x1000) + b"OB\0\0"
    at = raw.index(tag) + len(tag)
    raw[at : at + 4] = struct.pack("<I", 0x7FFF_FFF0)
    path.write_bytes(bytes(raw))
    _, error, peak = traced_peak(lambda: read_volume(tmp_path))
    assert isinstance(error, StudyReadError) and path.name in str(error)
    assert peak < 64 << 20
