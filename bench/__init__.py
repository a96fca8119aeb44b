"""Benchmarks (not tests): run `python -m bench.<name>`; results go to docs/performance.md."""
