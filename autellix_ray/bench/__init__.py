"""Benchmarks and workloads."""
