"""Benchmarks: each prints ratios against a plain baseline run side by side in one process."""
