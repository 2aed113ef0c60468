"""Hostile-input fuzz classes (hardening issue): file lists, symlinks, cross-request buffers, memory
budgets and card tampering. Each case returns ``loaded`` / ``rejected:<what>`` like the mutation fuzzers,
or a contract violation: ``ESCAPED:<Type>`` (an untyped exception) or ``BAD:<why>`` (foreign voxels, a
mixed-up buffer, a budget not enforced, a tampered card accepted or an intact one refused).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from model_core.errors import CardIntegrityError, StudyReadError
from model_core.studies import read_study, read_volume
from model_core.weights.card_seal import UNSEALED_FIELDS, sealed, verify_card_seal
from tests.model_core.studies.fuzz_outcome import classify_error

SHAPE = (6, 7, 5)
SECRET = (b"root:x:0:0:root:/root:/bin/bash\n" * 64)[: 2 * 6 * 7 * 5]
_LIST_LINES = ["LIST", "LIST 3", "list 2D", "LIST 1", "x_%03d.raw 1 5 1", "a b.raw", "../x.raw", "/etc/passwd",
               "sub/x.raw", "k: v/x.raw", "x.raw\\y", "LOCALX", ".", "..", "x.raw"]


def _truth(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(-500, 3000, size=SHAPE[::-1]).astype("<i2")  # (z, y, x) file order


def _same_voxels(vol: Any, truth: np.ndarray) -> bool:
    return np.array_equal(np.sort(np.asarray(vol.data).ravel()), np.sort(truth.astype(np.float32).ravel()))


def _header(kind: str, data_line: str) -> str:
    if kind == "mhd":
        return ("ObjectType = Image\nNDims = 3\nDimSize = 6 7 5\nElementType = MET_SHORT\nElementSpacing = 1 1 1\n"
                f"BinaryData = True\nBinaryDataByteOrderMSB = False\nElementDataFile = {data_line}\n")
    return ("NRRD0004\ntype: short\ndimension: 3\nsizes: 6 7 5\nendian: little\nencoding: raw\n"
            f"spacings: 1 1 1\ndata file: {data_line}\n")


def _outcome(read: Callable[[], Any], ok: Callable[[Any], str]) -> str:
    try:
        got = read()
    except StudyReadError as err:
        return classify_error(err)
    except CardIntegrityError:
        return "rejected:card"
    except Exception as err:  # noqa: BLE001 - the harness records escapes
        return f"ESCAPED:{type(err).__name__}: {str(err)[:80]}"
    return ok(got)


def file_list_case(rng: np.random.Generator, work: Path) -> str:
    """A detached header whose data line is a list, pattern, path or odd name, the named file present."""
    folder, truth = work / "s", _truth(rng)
    folder.mkdir(parents=True)
    (work / "secret.raw").write_bytes(SECRET)
    line = _LIST_LINES[int(rng.integers(0, len(_LIST_LINES)))]
    kind = ("mhd", "nhdr")[int(rng.integers(0, 2))]
    tail = "".join(f"{work / 'secret.raw'}\n" for _ in range(int(rng.integers(0, 6))))
    (folder / f"t2.{kind}").write_text(_header(kind, line) + tail)
    (folder / "x.raw").write_bytes(truth.tobytes())
    target = folder / line
    if "/" not in line and "\\" not in line and line not in (".", "..", "x.raw"):
        target.write_bytes(_truth(rng).tobytes() if rng.random() < 0.5 else SECRET)
    plain = target.parent == folder and target.is_file()

    def ok(vol: Any) -> str:  # only a plain in-folder name may load, and then with exactly that file's data
        own = np.frombuffer(target.read_bytes(), dtype="<i2") if plain else None
        return "loaded" if own is not None and own.size == truth.size and _same_voxels(vol, own) \
            else "BAD:foreign voxels"

    return _outcome(lambda: read_volume(folder / f"t2.{kind}"), ok)


def symlink_case(rng: np.random.Generator, work: Path) -> str:
    """A study folder where a data file, a loose file or a manifest entry is a link leaving it (or a loop)."""
    folder, truth = work / "s", _truth(rng)
    outside = work / "outside"
    folder.mkdir(parents=True)
    outside.mkdir()
    (outside / "x.raw").write_bytes(SECRET)
    (outside / "t2.mhd").write_text(_header("mhd", "x.raw"))
    kind = int(rng.integers(0, 4))
    if kind == 0:  # detached data file is a link out
        (folder / "t2.mhd").write_text(_header("mhd", "x.raw"))
        (folder / "x.raw").symlink_to(outside / "x.raw")
    elif kind == 1:  # loose image file is a link out
        (folder / "t2.mhd").symlink_to(outside / "t2.mhd")
    elif kind == 2:  # manifest entry through a linked folder
        (folder / "sub").symlink_to(outside, target_is_directory=True)
        (folder / "study.json").write_text(json.dumps({"t2": "sub/t2.mhd"}))
    else:  # a link loop named by the manifest
        (folder / "t2.mhd").symlink_to(folder / "t2.mhd")
        (folder / "study.json").write_text(json.dumps({"t2": "t2.mhd"}))
    del truth
    return _outcome(lambda: read_study(folder), lambda s: "BAD:a link leaving the folder was followed")


def cross_request_case(rng: np.random.Generator, work: Path) -> str:
    """Several studies read in a random interleaving: every read must return its own voxels."""
    truths = [_truth(rng) for _ in range(3)]
    paths = []
    for i, t in enumerate(truths):
        folder = work / f"c{i}"
        folder.mkdir(parents=True)
        kind = ("mhd", "nhdr")[int(rng.integers(0, 2))]
        (folder / f"t2.{kind}").write_text(_header(kind, "x.raw"))
        (folder / "x.raw").write_bytes(t.tobytes())
        paths.append(folder / f"t2.{kind}")
    order = rng.integers(0, 3, size=6)

    def read_all() -> list[tuple[int, Any]]:
        return [(int(i), read_volume(paths[int(i)])) for i in order]

    return _outcome(read_all, lambda got: "loaded" if all(_same_voxels(v, truths[i]) for i, v in got)
                    else "BAD:voxels of another request")


def budget_case(rng: np.random.Generator, work: Path) -> str:
    """Manifests asking for many phases / b-values, or one file in several roles: refused before reading."""
    folder = work / "s"
    folder.mkdir(parents=True)
    (folder / "a").write_bytes(b"")
    n = int(rng.choice([33, 100, 1000, 100_000]))
    kind = int(rng.integers(0, 4))
    doc: Any = ({"dce": ["a"] * n}, {"dwi": {str(b): "a" for b in range(min(n, 60_000))}},
                {"dce": ["a", "a"], "t2": "a"}, {"dwi": {"file": "a", "b_values": list(range(n))}})[kind]
    (folder / "study.json").write_text(json.dumps(doc))
    return _outcome(lambda: read_study(folder), lambda s: "BAD:budget not enforced")


def card_case(rng: np.random.Generator, base: dict[str, Any]) -> str:
    """Change one leaf of a sealed card: refused iff the leaf lies outside the unsealed fields."""
    doc = copy.deepcopy(base)
    leaves: list[tuple[list[Any], Any]] = []

    def walk(node: Any, path: list[Any]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, [*path, k])
        elif isinstance(node, list) and node:
            for i, v in enumerate(node):
                walk(v, [*path, i])
        else:
            leaves.append((path, node))

    walk(doc, [])
    path, value = leaves[int(rng.integers(0, len(leaves)))]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = _tamper(rng, value)
    tampered = parent[path[-1]] != value and path[0] not in UNSEALED_FIELDS
    return _outcome(lambda: verify_card_seal(doc, "card"),
                    lambda _: "BAD:tampered card accepted" if tampered else "loaded")


def _tamper(rng: np.random.Generator, value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + float(rng.choice([1e-9, 0.01, 1.0, -1.0])) if rng.random() < 0.9 else value
    if isinstance(value, str):
        return value + "x"
    return [value]


def card_base() -> dict[str, Any]:
    from model_core.engine.demo import DEMO_WEIGHTS
    from model_core.weights.native import card_path_for

    return sealed(json.loads(card_path_for(DEMO_WEIGHTS).read_text()))


HOSTILE = {"file-list": file_list_case, "symlink": symlink_case, "cross-request": cross_request_case,
           "budget": budget_case}


def hostile_case(rng: np.random.Generator, work: Path, n: int, base_card: dict[str, Any]) -> str:
    """One case of a randomly chosen class; the outcome label is prefixed with the class."""
    names = [*HOSTILE, "card"]
    name = names[int(rng.integers(0, len(names)))]
    case_dir = work / f"h{n}"
    case_dir.mkdir(parents=True)
    try:
        out = card_case(rng, base_card) if name == "card" else HOSTILE[name](rng, case_dir)
    finally:
        _remove(case_dir)
    return out if out.startswith(("ESCAPED", "BAD")) else f"{name}:{out}"


def _remove(folder: Path) -> None:
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files + dirs:
            p = Path(root) / name
            if p.is_symlink() or p.is_file():
                p.unlink()
            else:
                p.rmdir()
    folder.rmdir()
