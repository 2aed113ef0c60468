"""What the ``mome`` subcommands share: JSON output, a progress logger, the Runtime from arguments."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from model_core.errors import MomeError
from model_core.runtime import Runtime

log = logging.getLogger("model_core")


def emit(obj: Any, out: str | None) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False)
    if out:
        Path(out).write_text(text + "\n")
        log.info("wrote %s", out)
    sys.stdout.write(text + "\n")


def progress_logger(what: str) -> Any:
    """A progress callback that logs each stage once and every 10 %."""
    last: list[Any] = ["", -1]  # stage, percent

    def progress(done: int, total: int, stage: str) -> None:
        pct = 100 * done // max(total, 1)
        if stage != last[0] or pct // 10 != last[1] // 10:
            log.info("%s: %s (%d/%d, %d%%)", what, stage, done, total, pct)
            last[:] = [stage, pct]

    return progress


def run_alone(prog: str, description: str, configure: Callable[[argparse.ArgumentParser], None],
              run: Callable[[argparse.Namespace], int], argv: Sequence[str] | None = None) -> int:
    """One subcommand as its own program (``python -m ...``): parse, log to stderr, run; a
    :class:`~model_core.errors.MomeError` is logged and gives exit code 2."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    configure(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except MomeError as exc:
        log.error("%s", exc)
        return 2


def runtime_from_args(args: argparse.Namespace, device: str = "auto") -> Runtime:
    """The :class:`Runtime` of a command's ``--device``, ``--dtype`` and ``--threads`` (0 or absent: torch's
    default thread count)."""
    return Runtime(getattr(args, "device", None) or device, getattr(args, "dtype", None) or "fp32",
                   getattr(args, "threads", None) or None)


def command_line(args: argparse.Namespace, configure: Any, prog: str) -> str:
    """The canonical command of a parsed invocation: ``prog`` plus every option that differs from its
    default (and always the seed, epochs and accumulation), so the card's command re-runs the same thing."""
    ref = argparse.ArgumentParser(add_help=False)
    configure(ref)
    words = [*shlex.split(prog)]
    always = {"seed", "epochs", "accumulation", "lr", "preset", "task", "bootstrap"}
    for action in ref._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            words.append(str(value))
            continue
        if value is None or (value == action.default and action.dest not in always):
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(flag)
        elif isinstance(value, list):
            if action.dest == "cohort":
                words += [w for v in value for w in (flag, str(v))]
            else:
                words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)
