"""Bound the memory pydicom may ask for while reading one DICOM file.

* Element lengths: pydicom reads each value with ``file.read(length)``, and a buffered file allocates
  ``length`` bytes up front, so one damaged length field asks for gigabytes (seen in the fuzz run: 3.2 GB
  for a 3 KB file). :func:`open_dicom` hands pydicom the file's bytes in a :class:`io.BytesIO` instead,
  whose ``read(length)`` never allocates more than the bytes left; files above
  :data:`MAX_INFLATED_BYTES` are refused.
* Deflate: pydicom inflates a deflated data set whole, in memory, even to read its header: an 8 MB file
  can ask for gigabytes. :func:`check_deflated` finds the end of the file meta group (preamble, ``DICM``,
  then the ``(0002,0000)`` group length) and stream-inflates the rest in bounded chunks, refusing the
  file as soon as more than :data:`MAX_INFLATED_BYTES` come out.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

from model_core.errors import StudyReadError

DEFLATED_TS = b"1.2.840.10008.1.2.1.99"
MAX_INFLATED_BYTES = int(os.environ.get("MOME_MAX_DICOM_INFLATED_BYTES", 256 << 20))
"""Largest DICOM file, and largest inflated data set, accepted (default 256 MiB; a 4096 x 4096 float64
slice is 128 MiB); env ``MOME_MAX_DICOM_INFLATED_BYTES`` raises it."""

_CHUNK = 1 << 20


def _meta_end(head: bytes) -> int | None:
    """Byte offset just after the file meta group, or ``None`` when the meta group is not as expected."""
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
        return None
    if head[136:138] != b"UL":
        return None
    (group_len,) = struct.unpack("<I", head[140:144])
    return 144 + group_len


def check_deflated(path: Path, limit: int | None = None) -> None:
    """Refuse a deflated DICOM file whose data set inflates to more than ``limit`` bytes.

    Raises:
        StudyReadError: naming the file, the limit and how to raise it; or corrupt deflate data.
    """
    cap = MAX_INFLATED_BYTES if limit is None else limit
    with open(path, "rb") as f:
        head = f.read(4096)
        end = _meta_end(head)
        if end is None or DEFLATED_TS not in head[:end]:
            return
        f.seek(end)
        dec = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        try:
            while not dec.eof:
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                total += len(dec.decompress(chunk, _CHUNK))
                while dec.unconsumed_tail and total <= cap:
                    total += len(dec.decompress(dec.unconsumed_tail, _CHUNK))
                if total > cap:
                    raise StudyReadError(
                        path, f"deflated DICOM inflates to more than {cap >> 20} MiB (a decompression bomb?); "
                        "set MOME_MAX_DICOM_INFLATED_BYTES to raise the limit"
                    )
        except zlib.error as exc:
            raise StudyReadError(path, f"corrupt deflated DICOM data: {exc}") from exc


def open_dicom(path: Path) -> io.BytesIO:
    """The file's bytes for ``pydicom.dcmread`` (size and deflate bounded; see the module docstring).

    Raises:
        StudyReadError: the file is larger than :data:`MAX_INFLATED_BYTES` or inflates beyond it.
    """
    size = path.stat().st_size
    if size > MAX_INFLATED_BYTES:
        raise StudyReadError(path, f"DICOM file of {size >> 20} MiB is larger than {MAX_INFLATED_BYTES >> 20} MiB; "
                                   "set MOME_MAX_DICOM_INFLATED_BYTES to raise the limit")
    check_deflated(path)
    return io.BytesIO(path.read_bytes())
