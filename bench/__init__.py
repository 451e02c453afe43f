"""The performance benchmark (issue 5): `python -m bench.benchmark --help`, from the repo root."""
