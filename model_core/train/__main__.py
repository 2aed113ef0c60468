"""``python -m model_core.train`` (torchrun's entry point) = ``mome train``."""

from model_core.cli.train import main

raise SystemExit(main())
