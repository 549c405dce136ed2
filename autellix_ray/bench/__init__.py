"""Benchmarks, workloads, the example agents (``agents``) and the demo (``demo``).

Imports flow one way: this package imports the product (the rest of ``autellix_ray``);
nothing in the product imports it (tests/unit/test_core_boundary.py checks).
"""
