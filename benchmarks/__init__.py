"""Benchmarks (not installed with adhoc): run them from the repository root, python benchmarks/bench_NAME.py;
benchmarks/harness.py says how."""
