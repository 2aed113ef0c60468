"""Mutators and cases for NIfTI (.nii / .nii.gz) and NRRD / MetaImage files (see fuzzlib.py)."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from model_core.errors import StudyReadError
from model_core.studies import isolate, read_volume
from tests.model_core.studies.builders import canonical_phantom, write_nifti
from tests.model_core.studies.fuzz_outcome import (
    INTERESTING_FLOATS,
    INTERESTING_INTS,
    classify_error,
    run_case,
    trim_shape,
)

# --- NIfTI ---------------------------------------------------------------------------------------------


def nifti_base(work: Path) -> bytes:
    """Uncompressed bytes of a small valid NIfTI-1 (6 x 7 x 5 int16, scl_slope 1)."""
    path = write_nifti(work / "base.nii", canonical_phantom(), np.diag([0.8, 0.9, 2.0, 1.0]))
    return path.read_bytes()


_NII_FIELDS = {  # name: (offset, struct format)
    "dim": (40, "8h"),
    "datatype": (70, "h"),
    "bitpix": (72, "h"),
    "pixdim": (76, "8f"),
    "vox_offset": (108, "f"),
    "scl_slope": (112, "f"),
    "scl_inter": (116, "f"),
    "qform_code": (252, "h"),
    "sform_code": (254, "h"),
    "quatern": (256, "6f"),
    "srow": (280, "12f"),
    "sizeof_hdr": (0, "i"),
    "magic": (344, "4s"),
}


def mutate_nifti(rng: np.random.Generator, raw: bytes) -> bytes:
    b = bytearray(raw)
    op = rng.integers(0, 6)
    if op == 0:  # byte flips in the header
        for _ in range(rng.integers(1, 5)):
            b[rng.integers(0, 352)] ^= 1 << int(rng.integers(0, 8))
    elif op == 1:  # byte flips anywhere
        for _ in range(rng.integers(1, 9)):
            b[rng.integers(0, len(b))] = int(rng.integers(0, 256))
    elif op == 2:  # truncation
        return bytes(b[: rng.integers(0, len(b))])
    elif op == 3:  # dim[] edits (silent reshape hazard)
        i = int(rng.integers(0, 8))
        value = int(rng.choice(INTERESTING_INTS + [int(rng.integers(0, 12))]))
        struct.pack_into("<h", b, 40 + 2 * i, int(np.clip(value, -32768, 32767)))
    else:  # a typed field edit
        name = str(rng.choice(list(_NII_FIELDS)))
        off, fmt = _NII_FIELDS[name]
        n = struct.calcsize("<" + fmt)
        k = int(rng.integers(0, max(1, n // struct.calcsize("<" + fmt[-1]))))
        if fmt.endswith("s"):
            struct.pack_into("<4s", b, off, bytes(rng.integers(0, 256, 4).astype(np.uint8)))
        elif fmt.endswith("f"):
            struct.pack_into("<f", b, off + 4 * k, float(rng.choice(INTERESTING_FLOATS)))
        else:
            size = struct.calcsize("<" + fmt[-1])
            value = int(rng.choice(INTERESTING_INTS + [2, 4, 8, 16, 64, 512, 768, 1536, 2304]))
            fmt1 = "<" + fmt[-1]
            struct.pack_into(
                fmt1,
                b,
                off + size * k,
                int(np.clip(value, -(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1)),
            )
    return bytes(b)


def nifti_expected_shape(path: Path) -> tuple[int, ...] | None:
    try:
        img = nib.load(path)
        shape = trim_shape(tuple(int(s) for s in img.shape))
    except Exception:  # noqa: BLE001 - reference parse only
        return None
    return shape[:3] + shape[3:]


def nifti_case(rng: np.random.Generator, base: bytes, work: Path, n: int, gz: bool) -> str:
    mutated = mutate_nifti(rng, base)
    path = work / f"f{n}.nii.gz" if gz else work / f"f{n}.nii"
    if gz and rng.random() < 0.3:  # mutate the compressed stream instead
        comp = bytearray(gzip.compress(base, mtime=0))
        if rng.random() < 0.5:
            comp = comp[: rng.integers(0, len(comp))]
        else:
            for _ in range(rng.integers(1, 4)):
                comp[rng.integers(0, len(comp))] = int(rng.integers(0, 256))
        path.write_bytes(bytes(comp))
    else:
        path.write_bytes(gzip.compress(mutated, mtime=0) if gz else mutated)
    try:
        return run_case(lambda: read_volume(path), lambda: nifti_expected_shape(path))
    finally:
        path.unlink(missing_ok=True)


# --- NRRD / MetaImage ----------------------------------------------------------------------------------


def itk_bases(work: Path) -> dict[str, bytes]:
    img = sitk.GetImageFromArray(canonical_phantom().transpose(2, 1, 0))
    img.SetSpacing((0.8, 0.9, 2.0))
    img.SetOrigin((1.0, 2.0, 3.0))
    out = {}
    for name, compress in (("raw.nrrd", False), ("gz.nrrd", True), ("raw.mha", False), ("z.mha", True)):
        sitk.WriteImage(img, str(work / name), useCompression=compress)
        out[name] = (work / name).read_bytes()
    return out


_NRRD_EDITS = {
    "type": ["short", "float", "double", "uchar", "block", "int64", "", "short int x"],
    "dimension": ["0", "1", "2", "4", "100", "-1", "3.5", "99999999999"],
    "sizes": [
        "6 7 5",
        "6 7",
        "6 7 5 2",
        "0 7 5",
        "-6 7 5",
        "2048 2048 2048",
        "6 7 6",
        "6 7 4",
        "60000 1 1",
        "a b c",
    ],
    "space directions": [
        "(0.8,0,0) (0,0.9,0) (0,0,2)",
        "none (0,0.9,0) (0,0,2)",
        "(nan,0,0) (0,1,0) (0,0,1)",
        "(0,0,0) (0,0,0) (0,0,0)",
        "(1,0) (0,1) (0,0)",
        "(1e30,0,0) (0,1,0) (0,0,1)",
        "(1,1,0) (1,1,0) (0,0,1)",
        "garbage",
    ],
    "encoding": ["raw", "gzip", "bzip2", "hex", "ascii", "zzz"],
    "endian": ["little", "big", "middle", ""],
    "space origin": ["(nan,0,0)", "(1e300,0,0)", "(1,2)", "junk"],
    "space": [
        "left-posterior-superior",
        "right-anterior-superior",
        "scanner-xyz",
        "3D-right-handed",
        "bogus",
    ],
    "kinds": ["domain domain domain", "vector domain domain", "list"],
    "data file": ["../../etc/passwd", "other.raw", "LIST", "f%03d.raw 0 3 1"],
    "byte skip": ["-1", "10", "0"],
}
_MHA_EDITS = {
    "NDims": ["0", "1", "2", "4", "100", "-1", "3.5", "99999999999"],
    "DimSize": ["6 7 5", "6 7", "6 7 5 2", "0 7 5", "-6 7 5", "2048 2048 2048", "6 7 6", "6 7 4", "a b c"],
    "ElementType": [
        "MET_SHORT",
        "MET_FLOAT",
        "MET_DOUBLE",
        "MET_UCHAR",
        "MET_STRING",
        "MET_NONE",
        "MET_LONG",
        "junk",
    ],
    "ElementSpacing": ["0.8 0.9 2", "0 1 1", "-1 1 1", "nan 1 1", "1e30 1 1", "1 1", "21 1 1"],
    "ElementNumberOfChannels": ["1", "2", "0", "-1", "100000"],
    "CompressedData": ["True", "False", "maybe"],
    "CompressedDataSize": ["0", "1", "-1", "999999999"],
    "BinaryData": ["True", "False"],
    "BinaryDataByteOrderMSB": ["True", "False"],
    "HeaderSize": ["-1", "0", "100"],
    "TransformMatrix": [
        "1 0 0 0 1 0 0 0 1",
        "0 0 0 0 0 0 0 0 0",
        "1 0 0 1 0 0 0 0 1",
        "nan 0 0 0 1 0 0 0 1",
        "1 0 0",
    ],
    "Offset": ["1 2 3", "nan 0 0", "1e300 0 0", "1 2"],
    "ElementDataFile": ["LOCAL", "../../etc/passwd", "LIST", "x%03d.raw 1 3 1", "missing.raw"],
    "ObjectType": ["Image", "Tube", ""],
}


def _header_split(raw: bytes, is_nrrd: bool) -> tuple[list[bytes], bytes]:
    if is_nrrd:
        i = raw.index(b"\n\n")
        return raw[:i].split(b"\n"), raw[i + 2 :]
    i = raw.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    return raw[: i - 1].split(b"\n"), raw[i:]


def _join(lines: list[bytes], data: bytes, is_nrrd: bool) -> bytes:
    return b"\n".join(lines) + (b"\n\n" if is_nrrd else b"\n") + data


def mutate_itk(rng: np.random.Generator, raw: bytes, is_nrrd: bool) -> bytes:
    lines, data = _header_split(raw, is_nrrd)
    head_len = len(raw) - len(data)
    op = rng.integers(0, 7)
    if op == 0:
        b = bytearray(raw)
        for _ in range(rng.integers(1, 5)):
            b[rng.integers(0, head_len)] ^= 1 << int(rng.integers(0, 8))
        return bytes(b)
    if op == 1:
        return raw[: rng.integers(0, len(raw))]
    if op == 2:
        b = bytearray(raw)
        for _ in range(rng.integers(1, 9)):
            b[rng.integers(head_len, len(b))] = int(rng.integers(0, 256))
        return bytes(b)
    if op == 3 and len(lines) > 2:  # delete or duplicate a line
        i = int(rng.integers(1 if is_nrrd else 0, len(lines) - (0 if is_nrrd else 1)))
        if rng.random() < 0.5:
            del lines[i]
        else:
            lines.insert(i, lines[i])
        return _join(lines, data, is_nrrd)
    edits = _NRRD_EDITS if is_nrrd else _MHA_EDITS
    for _ in range(rng.integers(1, 3)):
        key = str(rng.choice(list(edits)))
        value = str(rng.choice(edits[key]))
        new = f"{key}: {value}" if is_nrrd else f"{key} = {value}"
        idx = next(
            (
                i
                for i, ln in enumerate(lines)
                if ln.decode("latin-1").split(":" if is_nrrd else " =")[0] == key
            ),
            None,
        )
        if idx is None:
            lines.insert(len(lines) - (0 if is_nrrd else 1), new.encode())
        else:
            lines[idx] = new.encode()
    return _join(lines, data, is_nrrd)


def itk_expected_shape(path: Path) -> tuple[int, ...] | None:
    text = path.read_bytes()[:4096].decode("latin-1")
    m = re.search(r"^sizes: *(\d+) +(\d+) +(\d+) *$", text, re.M | re.I) or re.search(
        r"^DimSize *= *(\d+) +(\d+) +(\d+) *$", text, re.M | re.I
    )
    return tuple(int(v) for v in m.groups()) if m else None


def itk_case(rng: np.random.Generator, bases: dict[str, bytes], work: Path, n: int, kind: str) -> str:
    names = [k for k in bases if k.endswith(kind)]
    name = names[int(rng.integers(0, len(names)))]
    path = work / f"f{n}{kind}"
    path.write_bytes(mutate_itk(rng, bases[name], kind == ".nrrd"))
    try:
        return run_case(lambda: read_volume(path), lambda: itk_expected_shape(path))
    finally:
        path.unlink(missing_ok=True)


def itk_raw_case(rng: np.random.Generator, bases: dict[str, bytes], work: Path, n: int) -> str:
    """Isolation check: a mutated ``.mha`` goes to the SimpleITK child *without* our header checks.

    Shows that native crashes in MetaIO (seen in-process: 23 of 1,000 mutated headers killed the
    interpreter) only ever cost the child process; the outcome is still a StudyReadError or a volume.
    """
    name = ("raw.mha", "z.mha")[int(rng.integers(0, 2))]
    path = work / f"r{n}.mha"
    path.write_bytes(mutate_itk(rng, bases[name], False))
    size = itk_expected_shape(path) or (6, 7, 5)

    def read() -> object:
        arr, _ = isolate.read_with_sitk(
            path, "MetaImageIO", size, 1 << 30, 60.0, np.dtype("<f8"), None  # type: ignore[arg-type]
        )
        return arr

    try:
        try:
            arr = read()
        except StudyReadError as err:
            return classify_error(err)
        except Exception as err:  # noqa: BLE001 - record escapes
            return f"ESCAPED:{type(err).__name__}: {str(err)[:120]}"
        return "loaded" if arr.shape == tuple(size[::-1]) else f"BAD:shape {arr.shape} vs {size}"  # type: ignore[attr-defined]
    finally:
        path.unlink(missing_ok=True)
