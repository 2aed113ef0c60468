"""``python -m model_core.train`` (torchrun's entry point) = ``mome train``."""

from model_core.train.cli import main

raise SystemExit(main())
