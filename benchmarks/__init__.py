"""Benchmarks of rxibkr: ``python -m benchmarks.run`` (the harness), ``benchmarks/bench_decode.py``."""
