"""What our NRRD / MetaImage header parsers extract, and its checks (before SimpleITK sees the file).

:class:`TextHeader` is filled by :mod:`model_core.studies.nrrd` or :mod:`model_core.studies.metaio`;
:func:`check_text_header` then applies the limits and compares the data actually present on disk with
the size the header declares: exact for raw data, by bounded streaming decompression for gzip/zlib data
(SimpleITK zero-fills short data instead of failing, so we never rely on it for that).
"""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_core.errors import StudyReadError
from model_core.studies.validate import DEFAULT_LIMITS, ReadLimits, check_shape, check_spacing, confined, reading

MAX_HEADER_BYTES = 65536
"""Longest text header we parse; longer ones are refused."""

_CHUNK = 1 << 20


@dataclass(frozen=True)
class TextHeader:
    """The parts of a NRRD / MetaImage header that the checks need.

    Attributes:
        path: the header file.
        kind: ``"nrrd"`` or ``"metaio"``.
        sizes: ``(x, y, z)`` voxels (ITK index order).
        dtype: element type with its byte order.
        encoding: ``"raw"``, ``"gzip"`` (NRRD), ``"zlib"`` (MetaImage compressed) or ``"text"``.
        data_path: file holding the voxels (the header file itself when attached).
        data_offset: byte offset of the voxels in ``data_path``.
        spacing: ``(x, y, z)`` voxel size in mm as declared (norms of the direction vectors).
        imageio: the SimpleITK ImageIO to use (``"NrrdImageIO"`` or ``"MetaImageIO"``).
    """

    path: Path
    kind: str
    sizes: tuple[int, int, int]
    dtype: np.dtype
    encoding: str
    data_path: Path
    data_offset: int
    spacing: tuple[float, float, float]
    imageio: str

    @property
    def nbytes(self) -> int:
        """Bytes of (uncompressed) voxel data the header declares."""
        return math.prod(self.sizes) * self.dtype.itemsize


def read_header_text(path: Path, magic: bytes, blank_line_ends: bool) -> tuple[list[str], int]:
    """Read header lines (ASCII) and the byte offset just after the header.

    With ``blank_line_ends`` the header ends at the first empty line (NRRD); otherwise the caller decides
    (MetaImage ends after ``ElementDataFile``) and the offset returned is of each line end in turn.
    """
    with reading(path, "cannot read header"), open(path, "rb") as f:
        head = f.read(MAX_HEADER_BYTES)
    if not head.startswith(magic):
        raise StudyReadError(path, f"not a {magic.decode(errors='replace').strip()!r}... file (bad magic)")
    lines: list[str] = []
    pos = 0
    while pos < len(head):
        end = head.find(b"\n", pos)
        if end < 0:
            if len(head) >= MAX_HEADER_BYTES:
                raise StudyReadError(path, f"header longer than {MAX_HEADER_BYTES} bytes")
            end = len(head)
        raw = head[pos:end].rstrip(b"\r")
        pos = end + 1
        if blank_line_ends and raw == b"":
            return lines, pos
        try:
            lines.append(raw.decode("ascii"))
        except UnicodeDecodeError as exc:
            if not blank_line_ends:
                break
            raise StudyReadError(path, f"header line {len(lines) + 1} is not ASCII text") from exc
        if not blank_line_ends and lines[-1].replace(" ", "").lower().startswith("elementdatafile="):
            return lines, pos
    return lines, -1


def local_data_file(header_path: Path, name: str) -> Path:
    """Resolve a detached data file name: a bare file name in the header's own folder, nothing else.

    Refused: paths, file lists (``LIST``, also when a file of that name exists), patterns (``%``, or a
    name followed by numbers), names with whitespace or control characters, and a link leaving the folder.
    """
    name = name.strip()
    plain = re.fullmatch(r"[^/\\%\s\x00-\x1f]+", name) is not None
    if not plain or name in (".", "..") or name.upper() == "LIST":
        raise StudyReadError(
            header_path,
            f"data file {name[:80]!r} refused: only a plain file name in the same "
            "folder is accepted (no paths, lists or patterns)",
        )
    data = header_path.with_name(name)
    confined(data, header_path.parent, header_path, "data file")
    return data


def parse_floats(path: Path, field: str, text: str, n: int) -> list[float]:
    """``n`` floats from whitespace/comma-separated text, refusing anything else."""
    parts = [t for t in re.split(r"[\s,()]+", text.strip()) if t]
    try:
        values = [float(t) for t in parts]
    except ValueError as exc:
        raise StudyReadError(path, f"field {field!r}: not numbers: {text[:80]!r}") from exc
    if len(values) != n:
        raise StudyReadError(path, f"field {field!r}: expected {n} numbers, got {len(values)}")
    return values


def parse_ints(path: Path, field: str, text: str) -> list[int]:
    try:
        return [int(t) for t in text.split()]
    except ValueError as exc:
        raise StudyReadError(path, f"field {field!r}: not integers: {text[:80]!r}") from exc


def _compressed_length(path: Path, offset: int, expected: int, wbits: int) -> int:
    """Decompress from ``offset`` in bounded chunks; return the byte count (stops once above ``expected``)."""
    dec = zlib.decompressobj(wbits)
    total = 0
    with open(path, "rb") as f:
        f.seek(offset)
        while total <= expected:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            buf = dec.decompress(chunk, _CHUNK)
            total += len(buf)
            while dec.unconsumed_tail and total <= expected:
                buf = dec.decompress(dec.unconsumed_tail, _CHUNK)
                total += len(buf)
            if dec.eof:
                break
        if total <= expected and not dec.eof:
            total += len(dec.flush())
    return total


def check_text_header(hdr: TextHeader, limits: ReadLimits = DEFAULT_LIMITS) -> None:
    """Limits plus "is the declared data really there" (raw: file size; gzip/zlib: decompressed length)."""
    check_shape(hdr.path, hdr.sizes, limits)
    check_spacing(hdr.path, hdr.spacing, limits)
    if not hdr.data_path.is_file():
        raise StudyReadError(hdr.path, f"data file {hdr.data_path.name!r} does not exist")
    size = hdr.data_path.stat().st_size
    if hdr.data_offset < 0 or hdr.data_offset > size:
        raise StudyReadError(
            hdr.path, f"voxel data offset {hdr.data_offset} is outside the data file ({size} bytes)"
        )
    if hdr.encoding == "raw":
        if hdr.data_offset + hdr.nbytes > size:
            raise StudyReadError(
                hdr.path,
                f"truncated: header declares {hdr.nbytes} bytes of voxel data at "
                f"offset {hdr.data_offset}, the file holds {size - hdr.data_offset}",
            )
    elif hdr.encoding in ("gzip", "zlib"):
        wbits = 16 + zlib.MAX_WBITS if hdr.encoding == "gzip" else 32 + zlib.MAX_WBITS
        with reading(hdr.path, f"corrupt {hdr.encoding} voxel data"):
            got = _compressed_length(hdr.data_path, hdr.data_offset, hdr.nbytes, wbits)
        if got < hdr.nbytes:
            raise StudyReadError(
                hdr.path,
                f"truncated: {hdr.encoding} voxel data decompress to {got} bytes, "
                f"the header declares {hdr.nbytes}",
            )
    elif hdr.encoding != "text":
        raise StudyReadError(hdr.path, f"unsupported encoding {hdr.encoding!r}")


_TEXT_BYTES_PER_VOXEL = 64
"""Longest text (``encoding: text``) data accepted per declared voxel."""


def data_digest(hdr: TextHeader) -> str:
    """sha256 of the voxel data the header declares, decoded from the data file by us (not SimpleITK).

    Raw: the ``nbytes`` bytes at ``data_offset``; gzip/zlib: the first ``nbytes`` decompressed bytes;
    text: the numbers parsed and stored in ``hdr.dtype``. The SimpleITK worker's voxels must hash to the
    same value (:func:`~model_core.studies.isolate.read_with_sitk`), which proves they are this file's data.

    Raises:
        StudyReadError: the data cannot be decoded or hold fewer values than declared.
    """
    h = hashlib.sha256()
    left = hdr.nbytes
    with reading(hdr.path, f"cannot read the {hdr.encoding} voxel data"), open(hdr.data_path, "rb") as f:
        f.seek(hdr.data_offset)
        if hdr.encoding == "text":
            return _text_digest(hdr, f.read(hdr.nbytes // hdr.dtype.itemsize * _TEXT_BYTES_PER_VOXEL + 1))
        dec = None if hdr.encoding == "raw" else zlib.decompressobj(
            16 + zlib.MAX_WBITS if hdr.encoding == "gzip" else 32 + zlib.MAX_WBITS)
        while left > 0:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            buf = chunk if dec is None else dec.decompress(chunk, left)
            while True:
                h.update(buf[:left])
                left -= min(left, len(buf))
                if dec is None or not dec.unconsumed_tail or left <= 0:
                    break
                buf = dec.decompress(dec.unconsumed_tail, left)
    if left > 0:
        raise StudyReadError(hdr.path, f"truncated: {left} of {hdr.nbytes} declared voxel bytes missing")
    return h.hexdigest()


def _text_digest(hdr: TextHeader, text: bytes) -> str:
    n = math.prod(hdr.sizes)
    if len(text) > n * _TEXT_BYTES_PER_VOXEL:
        raise StudyReadError(hdr.path, f"text voxel data longer than {_TEXT_BYTES_PER_VOXEL} bytes per voxel")
    values = np.array(text.split()[:n], dtype=np.float64)
    if values.size < n:
        raise StudyReadError(hdr.path, f"truncated: {values.size} text values for {n} declared voxels")
    return hashlib.sha256(values.astype(hdr.dtype).tobytes()).hexdigest()
