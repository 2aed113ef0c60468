"""Our own NRRD header parser (``.nrrd`` attached, ``.nhdr`` detached): checks before SimpleITK reads.

Accepted: NRRD0001..0005 magic; ``dimension: 3``; ``sizes`` of three integers; a scalar numeric ``type``;
``encoding`` raw, gzip/gz or text/txt/ascii; ``endian`` when the element is wider than one byte; spacing
from ``space directions`` (three vectors, no ``none``) or ``spacings``. ``data file`` must be a plain file
name in the header's folder. Refused (clear message): other dimensions, vector/list axes, bzip2/hex
encodings, ``line skip`` / ``byte skip``, data file lists or patterns.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from model_core.errors import StudyReadError
from model_core.studies.texthdr import TextHeader, local_data_file, parse_floats, parse_ints, read_header_text

NRRD_SUFFIXES = (".nrrd", ".nhdr")

_TYPES: dict[str, str] = {}
for _names, _code in (
    (("signed char", "int8", "int8_t"), "i1"),
    (("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    (("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    (("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    (("int", "signed int", "int32", "int32_t"), "i4"),
    (("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    (
        (
            "longlong",
            "long long",
            "long long int",
            "signed long long",
            "signed long long int",
            "int64",
            "int64_t",
        ),
        "i8",
    ),
    (("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
    (("float",), "f4"),
    (("double",), "f8"),
):
    for _n in _names:
        _TYPES[_n] = _code

_FIELD_NAME = re.compile(r"[a-z][a-z0-9 _-]*")

_ENCODINGS = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "text": "text", "txt": "text", "ascii": "text"}


def is_nrrd_path(path: object) -> bool:
    return str(path).lower().endswith(NRRD_SUFFIXES)


def _fields(path: Path, lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if not line or line.startswith("#"):
            continue
        colon = line.find(":")
        if colon > 0 and line[colon + 1 : colon + 2] == "=":  # "key:=value" pair: free text, not a field
            continue
        if ": " not in line:
            raise StudyReadError(path, f"malformed NRRD header line {line[:80]!r}")
        key, value = line.split(": ", 1)
        key = key.strip().lower()
        if not _FIELD_NAME.fullmatch(key):  # e.g. a file path holding ": " (a data file list entry)
            raise StudyReadError(path, f"malformed NRRD header line {line[:80]!r} (not a field name)")
        if key in fields:
            raise StudyReadError(path, f"NRRD field {key!r} given twice")
        fields[key] = value.strip()
    return fields


def _spacing(path: Path, fields: dict[str, str]) -> tuple[float, float, float]:
    if "space directions" in fields:
        vectors = re.findall(r"\(([^)]*)\)|(none)", fields["space directions"])
        if len(vectors) != 3 or any(v[1] for v in vectors):
            raise StudyReadError(
                path,
                f"'space directions' must give three vectors (no 'none' axes): "
                f"{fields['space directions'][:120]!r}",
            )
        dims = {len(v[0].split(",")) for v in vectors}
        if dims != {3}:
            raise StudyReadError(path, "'space directions' vectors must have 3 components (3-D space)")
        norms = [float(np.linalg.norm(parse_floats(path, "space directions", v[0], 3))) for v in vectors]
        return norms[0], norms[1], norms[2]
    if "spacings" in fields:
        s = parse_floats(path, "spacings", fields["spacings"], 3)
        return s[0], s[1], s[2]
    return 1.0, 1.0, 1.0


def parse_nrrd_header(path: str | Path) -> TextHeader:
    """Parse and sanity-check a NRRD header; reads no voxel data."""
    p = Path(path)
    lines, data_offset = read_header_text(p, b"NRRD000", blank_line_ends=True)
    if not re.fullmatch(r"NRRD000[1-5]", lines[0] if lines else ""):
        raise StudyReadError(p, f"unknown NRRD magic {lines[0][:20] if lines else ''!r}")
    f = _fields(p, lines)
    for key in ("type", "dimension", "sizes", "encoding"):
        if key not in f:
            raise StudyReadError(p, f"NRRD header lacks the required field {key!r}")
    dims = parse_ints(p, "dimension", f["dimension"])
    if dims != [3]:
        raise StudyReadError(
            p, f"dimension {f['dimension'][:20]!r}: only 3-D scalar NRRD volumes are supported"
        )
    sizes = parse_ints(p, "sizes", f["sizes"])
    if len(sizes) != 3:
        raise StudyReadError(p, f"'sizes' has {len(sizes)} entries for dimension 3")
    code = _TYPES.get(f["type"].lower())
    if code is None:
        raise StudyReadError(p, f"unsupported NRRD type {f['type'][:40]!r}")
    encoding = _ENCODINGS.get(f["encoding"].lower())
    if encoding is None:
        raise StudyReadError(
            p, f"unsupported NRRD encoding {f['encoding'][:40]!r} (raw, gzip or text only)"
        )
    dtype = np.dtype(code)
    if dtype.itemsize > 1 and encoding != "text":
        endian = f.get("endian", "").lower()
        if endian not in ("little", "big"):
            raise StudyReadError(
                p, f"'endian' must be little or big for type {f['type']!r}, got {endian!r}"
            )
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    for key in ("line skip", "lineskip", "byte skip", "byteskip"):
        if key in f and f[key].strip() != "0":
            raise StudyReadError(p, f"unsupported NRRD field {key!r} = {f[key][:20]!r}")
    data_name = f.get("data file", f.get("datafile"))
    if data_name is not None:
        data_path, offset = local_data_file(p, data_name), 0
    elif data_offset < 0:
        raise StudyReadError(p, "no voxel data: the header has no blank line and no 'data file'")
    else:
        data_path, offset = p, data_offset
    return TextHeader(
        path=p,
        kind="nrrd",
        sizes=(sizes[0], sizes[1], sizes[2]),
        dtype=dtype,
        encoding=encoding,
        data_path=data_path,
        data_offset=offset,
        spacing=_spacing(p, f),
        imageio="NrrdImageIO",
    )
