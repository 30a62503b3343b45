"""Benchmarks: `make bench` runs every ``bench_*.py`` module's ``main()`` (python -m benchmarks).

Each prints a table of measured numbers and ratios against a peer measured in the same run.
Nothing here asserts a wall-clock target: the machine is shared and noisy.
"""
