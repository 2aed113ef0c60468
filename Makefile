# Quick start (README): `make demo` runs the main job on the embedded demo; `make test` runs the checks.
.PHONY: demo test lint bench install

.venv/.installed: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh

install: .venv/.installed

demo: .venv/.installed
	.venv/bin/mome demo --out demo-result

lint: .venv/.installed
	.venv/bin/ruff check .
	.venv/bin/mypy model_core napari_mome

test: lint
	.venv/bin/python -m pytest -q

bench: .venv/.installed
	.venv/bin/mome bench --preset base
