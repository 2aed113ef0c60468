"""Our own MetaImage header parser (``.mha`` attached, ``.mhd`` detached): checks before SimpleITK reads.

MetaIO's C++ parser has many memory-safety defects reachable from a malformed header (ITK#6853; 23 of
1,000 mutated ``.mha`` killed SimpleITK here), so the header is parsed and checked in Python first.

Accepted: ``ObjectType = Image``; ``NDims = 3``; ``DimSize`` of three integers; scalar ``ElementType``
``MET_(U)CHAR/(U)SHORT/(U)INT/(U)LONG/(U)LONG_LONG/FLOAT/DOUBLE``; ``ElementNumberOfChannels`` 1;
``BinaryData = True``; ``CompressedData`` True (zlib) or False; spacing from ``ElementSpacing`` (or
``ElementSize``); ``ElementDataFile`` ``LOCAL`` or a plain file name in the same folder, and it must be the
last header line. Refused: other dimensions, multi-channel data, ASCII data, ``HeaderSize``, file lists
and patterns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_core.errors import StudyReadError
from model_core.studies.texthdr import TextHeader, local_data_file, parse_floats, parse_ints, read_header_text

METAIO_SUFFIXES = (".mha", ".mhd")

_TYPES = {
    "MET_CHAR": "i1",
    "MET_UCHAR": "u1",
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_INT": "i4",
    "MET_UINT": "u4",
    "MET_LONG": "i4",
    "MET_ULONG": "u4",
    "MET_LONG_LONG": "i8",
    "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4",
    "MET_DOUBLE": "f8",
}
_KNOWN_FIELDS = {
    "objecttype",
    "objectsubtype",
    "ndims",
    "dimsize",
    "elementtype",
    "elementdatafile",
    "elementspacing",
    "elementsize",
    "elementnumberofchannels",
    "binarydata",
    "binarydatabyteordermsb",
    "elementbyteordermsb",
    "compresseddata",
    "compresseddatasize",
    "headersize",
    "transformmatrix",
    "rotation",
    "orientation",
    "offset",
    "position",
    "origin",
    "centerofrotation",
    "anatomicalorientation",
    "comment",
    "name",
    "id",
    "parentid",
    "color",
    "modality",
    "elementmin",
    "elementmax",
    "transformtype",
    "acquisitiondate",
    "sequenceid",
    "distancetoparent",
}


def is_metaio_path(path: object) -> bool:
    return str(path).lower().endswith(METAIO_SUFFIXES)


def _bool(path: Path, key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise StudyReadError(path, f"field {key!r} must be True or False, got {value[:20]!r}")


def parse_metaio_header(path: str | Path) -> TextHeader:
    """Parse and sanity-check a MetaImage header; reads no voxel data."""
    p = Path(path)
    lines, data_offset = read_header_text(p, b"", blank_line_ends=False)
    fields: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        if "=" not in line:
            raise StudyReadError(p, f"malformed MetaImage header line {line[:80]!r}")
        key, value = (t.strip() for t in line.split("=", 1))
        k = key.lower()
        if k not in _KNOWN_FIELDS:  # MetaIO ignores fields it does not know; so do we
            continue
        if k in fields:
            raise StudyReadError(p, f"MetaImage field {key!r} given twice")
        fields[k] = value
    if data_offset < 0 or "elementdatafile" not in fields:
        raise StudyReadError(p, "MetaImage header has no ElementDataFile line")
    if fields.get("objecttype", "Image").lower() != "image":
        raise StudyReadError(p, f"ObjectType {fields['objecttype'][:20]!r} is not Image")
    for key in ("ndims", "dimsize", "elementtype"):
        if key not in fields:
            raise StudyReadError(p, f"MetaImage header lacks the required field {key!r}")
    if parse_ints(p, "NDims", fields["ndims"]) != [3]:
        raise StudyReadError(p, f"NDims {fields['ndims'][:20]!r}: only 3-D MetaImage volumes are supported")
    sizes = parse_ints(p, "DimSize", fields["dimsize"])
    if len(sizes) != 3:
        raise StudyReadError(p, f"DimSize has {len(sizes)} entries for NDims 3")
    code = _TYPES.get(fields["elementtype"].upper())
    if code is None:
        raise StudyReadError(p, f"unsupported ElementType {fields['elementtype'][:30]!r}")
    channels = parse_ints(p, "ElementNumberOfChannels", fields.get("elementnumberofchannels", "1"))
    if channels != [1]:
        raise StudyReadError(
            p, "multi-channel MetaImage data is not supported (ElementNumberOfChannels != 1)"
        )
    if not _bool(p, "BinaryData", fields.get("binarydata", "True")):
        raise StudyReadError(p, "ASCII MetaImage data (BinaryData = False) is not supported")
    if fields.get("headersize", "0").strip() != "0":
        raise StudyReadError(p, f"HeaderSize {fields['headersize'][:20]!r} is not supported")
    msb_text = fields.get("binarydatabyteordermsb", fields.get("elementbyteordermsb", "False"))
    dtype = np.dtype(code).newbyteorder(">" if _bool(p, "BinaryDataByteOrderMSB", msb_text) else "<")
    compressed = _bool(p, "CompressedData", fields.get("compresseddata", "False"))
    spacing_text = fields.get("elementspacing", fields.get("elementsize", "1 1 1"))
    spacing = parse_floats(p, "ElementSpacing", spacing_text, 3)
    for key in ("transformmatrix", "rotation", "orientation"):
        if key in fields:
            parse_floats(p, key, fields[key], 9)
    for key in ("offset", "position", "origin"):
        if key in fields:
            parse_floats(p, key, fields[key], 3)
    name = fields["elementdatafile"]
    if name.upper() == "LOCAL":
        data_path, offset = p, data_offset
    else:
        data_path, offset = local_data_file(p, name), 0
    return TextHeader(
        path=p,
        kind="metaio",
        sizes=(sizes[0], sizes[1], sizes[2]),
        dtype=dtype,
        encoding="zlib" if compressed else "raw",
        data_path=data_path,
        data_offset=offset,
        spacing=(spacing[0], spacing[1], spacing[2]),
        imageio="MetaImageIO",
    )
