"""Benchmarks: `python -m bench.<name> [ARGS]`; the last line printed is one JSON object."""
