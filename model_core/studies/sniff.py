"""Cheap file-type detection (no third-party imports, no voxel reads): used by readers and the napari hook."""

from __future__ import annotations

import os
from pathlib import Path

MANIFEST_NAME = "study.json"
NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def has_dicom_magic(path: str | os.PathLike[str]) -> bool:
    """True when bytes 128..131 are ``DICM`` (reads 132 bytes at most)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES


DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def _folder_has_images(p: Path, depth: int, budget: list[int]) -> bool:
    """Manifest, image name or DICOM magic in the first 200 entries; ``budget`` caps probes overall."""
    if (p / MANIFEST_NAME).is_file():
        return True
    subdirs = []
    with os.scandir(p) as it:
        for i, entry in enumerate(it):
            if i >= 200:
                break
            if entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file():
                return True
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(Path(entry.path))
            elif budget[0] > 0 and entry.is_file():
                budget[0] -= 1
                if has_dicom_magic(entry.path):
                    return True
    for sub in subdirs[:5] if depth > 0 else []:
        if budget[0] <= 0:
            break
        budget[0] -= 1
        if _folder_has_images(sub, depth - 1, budget):
            return True
    return False


def sniff(path: str | os.PathLike[str]) -> str | None:
    """Cheap type guess without reading voxels.

    Returns ``"nifti"``, ``"itk"`` (NRRD/MetaImage), ``"dicom"`` (one file with the DICM magic),
    ``"manifest"`` (a ``study.json``), ``"folder"`` (a folder holding a manifest, image files or DICOM files
    among its first 200 entries, or one level down in up to 5 sub-folders; at most 20 probes in all) or
    ``None``. May raise ``OSError`` for unreadable folders.
    """
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        return "folder" if _folder_has_images(p, depth=1, budget=[20]) else None
    if not p.is_file():
        return None
    if name == MANIFEST_NAME:
        return "manifest"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(ITK_SUFFIXES):
        return "itk"
    if (name.endswith(DICOM_SUFFIXES) or "." not in name) and has_dicom_magic(p):
        return "dicom"
    return None
