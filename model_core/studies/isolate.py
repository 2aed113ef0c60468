"""Run SimpleITK reads in a long-lived, isolated child process.

SimpleITK (ITK MetaIO / NrrdIO) can abort or segfault on malformed headers; in-process that would kill
napari. :func:`read_with_sitk` sends one request to a child worker (``_sitk_worker.py``, started with
``python -I``, its own session, an address-space limit) and waits with a timeout. The voxels come back as a
``.npy`` in the file's own type, under a fresh name per request in a private temporary folder, loaded with
``np.load(allow_pickle=False)`` and checked against the request id, the approved shape and type, and a
sha256 of the file's data computed here; geometry comes back as JSON. Nothing is unpickled. When the child
dies or times out the caller gets a :class:`~model_core.errors.StudyReadError` and the next call starts a new
child. One worker is shared by the process (guarded by a lock); :func:`shutdown_worker` ends it (also
registered with ``atexit``).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

import numpy as np

from model_core.errors import StudyReadError

logger = logging.getLogger(__name__)

_WORKER_SCRIPT = Path(__file__).with_name("_sitk_worker.py")
_START_TIMEOUT_S = 120.0


def _signal_name(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class _Worker:
    """One child process; not thread-safe by itself (the module lock serialises use)."""

    def __init__(self, mem_limit: int) -> None:
        self.mem_limit = mem_limit
        self.tmpdir = Path(tempfile.mkdtemp(prefix="mome-sitk-"))
        self.errlog: IO[bytes] = open(self.tmpdir / "stderr.log", "w+b")  # closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(_WORKER_SCRIPT), str(mem_limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errlog,
            start_new_session=True,
            close_fds=True,
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._pump, name="mome-sitk-pump", daemon=True).start()
        self._next_id = 0
        line = self._readline(_START_TIMEOUT_S)
        if line is None or not json.loads(line).get("ready"):
            self.close()
            raise RuntimeError(
                f"SimpleITK worker did not start ({_signal_name(self.proc.returncode)}): "
                f"{self.stderr_tail()}"
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self, n: int = 300) -> str:
        try:
            self.errlog.flush()
            size = self.errlog.seek(0, os.SEEK_END)
            self.errlog.seek(max(0, size - n))
            return self.errlog.read().decode("utf-8", "replace").strip().replace("\n", " | ")
        except (OSError, ValueError):
            return ""

    def _pump(self) -> None:
        """Reader thread: forward the child's stdout lines to the queue; ``None`` marks EOF."""
        assert self.proc.stdout is not None
        try:
            for line in iter(self.proc.stdout.readline, b""):
                self._lines.put(line.rstrip(b"\n"))
        except (OSError, ValueError):
            pass
        self._lines.put(None)

    def _readline(self, timeout: float) -> bytes | None:
        """One line from the child; None on EOF. Raises TimeoutError (portable: no select on pipes)."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty as exc:
            raise TimeoutError from exc

    def request(
        self, path: Path, imageio: str, size: tuple[int, int, int], dtype: np.dtype, timeout: float
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self._next_id += 1
        out = self.tmpdir / f"{self._next_id}-{secrets.token_hex(8)}.npy"  # a fresh name per request
        req = {
            "id": self._next_id,
            "path": str(path),
            "imageio": imageio,
            "size": list(size),
            "dtype": dtype.str,
            "out": str(out),
        }
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
            line = self._readline(timeout)
        except TimeoutError as exc:
            self.close(force=True)
            raise StudyReadError(path, f"SimpleITK reader timed out after {timeout:.0f} s") from exc
        except (BrokenPipeError, OSError) as exc:
            line = None
            logger.debug("worker pipe error: %s", exc)
        try:
            if line is None:
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                why = _signal_name(self.proc.returncode)
                tail = self.stderr_tail()
                self.close()
                raise StudyReadError(
                    path,
                    f"SimpleITK reader process died ({why}) on this file; it is probably "
                    f"malformed{': ' + tail if tail else ''}",
                )
            try:
                reply = json.loads(line)
            except ValueError as exc:
                self.close()
                raise StudyReadError(path, "SimpleITK reader sent an unreadable reply") from exc
            if reply.get("id") != req["id"]:
                self.close()
                raise StudyReadError(
                    path, f"SimpleITK reader answered request {reply.get('id')!r}, not {req['id']}"
                )
            if not reply.get("ok"):
                raise StudyReadError(path, f"SimpleITK cannot read it: {str(reply.get('error'))[:400]}")
            try:
                arr = np.load(out, allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise StudyReadError(
                    path, f"cannot load the voxels from the reader process: {exc}"
                ) from exc
            return arr, reply
        finally:
            out.unlink(missing_ok=True)

    def close(self, force: bool = False) -> None:
        if self.proc.poll() is None and force:
            self.proc.kill()
            self.proc.wait()
        if self.proc.poll() is None:
            try:
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self.errlog.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


_lock = threading.Lock()
_worker: _Worker | None = None


def worker_memory_limit(max_bytes: int) -> int:
    """Address-space limit of the child: room for the file's own array, its float32 copy and the runtime."""
    return 3 * int(max_bytes) + (2 << 30)


def read_with_sitk(
    path: str | os.PathLike[str], imageio: str, size: tuple[int, int, int], max_bytes: int, timeout: float,
    dtype: np.dtype, digest: str | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read ``path`` with SimpleITK in the child worker; prove the voxels are this file's data.

    The worker returns the voxels in the file's declared type and byte order; their sha256 must equal
    ``digest``, which the caller computed from the file's data bytes itself
    (:func:`~model_core.studies.texthdr.data_digest`). Together with the request id and a fresh output
    name per request, no voxel of another request or of another file can come back unnoticed.

    Args:
        path: image file (its header already checked by the caller).
        imageio: SimpleITK ImageIO name, e.g. ``"NrrdImageIO"``.
        size: approved ``(x, y, z)`` size; SimpleITK must see exactly this before reading voxels.
        dtype: the file's declared voxel type with its byte order.
        digest: sha256 of the file's decoded voxel bytes; ``None`` skips that proof (only the fuzz
            tests' isolation check, which sends unchecked headers, passes ``None``).
        max_bytes: the volume cap (sets the child's memory limit).
        timeout: seconds to wait for the reply.

    Returns:
        ``(array, geometry)``: float32 array ``(z, y, x)`` (SimpleITK order) and a dict with ``spacing``,
        ``origin`` (``(x, y, z)``, LPS mm), ``direction`` (9 floats, row-major, LPS) and ``pixel``.
    """
    global _worker
    p = Path(path)
    with _lock:
        limit = worker_memory_limit(max_bytes)
        if _worker is not None and (not _worker.alive() or _worker.mem_limit != limit):
            _worker.close()
            _worker = None
        if _worker is None:
            try:
                _worker = _Worker(limit)
            except (OSError, RuntimeError, ValueError) as exc:
                raise StudyReadError(p, f"cannot start the isolated SimpleITK reader: {exc}") from exc
        worker = _worker
        try:
            arr, geom = worker.request(p, imageio, size, np.dtype(dtype), timeout)
        finally:
            if not worker.alive():
                _worker = None
    expected = (size[2], size[1], size[0])
    if arr.dtype != np.dtype(dtype) or arr.shape != expected:
        raise StudyReadError(
            p, f"reader process returned {arr.dtype.str} {arr.shape}, expected {np.dtype(dtype).str} {expected}"
        )
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)  # no copy; a 0-byte array hashes too
    got = hashlib.sha256(flat.data).hexdigest()
    if digest is not None and got != digest:
        raise StudyReadError(
            p, "the voxels SimpleITK returned are not the bytes of this file's data (checksum mismatch); "
            "refused (a file list, pattern or stale buffer?)",
        )
    return arr.astype(np.float32, copy=False), geom


def shutdown_worker() -> None:
    """Stop the shared child worker, if any."""
    global _worker
    with _lock:
        if _worker is not None:
            _worker.close()
            _worker = None


atexit.register(shutdown_worker)
