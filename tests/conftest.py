"""Shared fixtures: the tiny model (built once per machine, no download)."""

import os

import pytest

os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# One OpenMP thread per engine: with the default two, vLLM-CPU steps ran 20-40x slower when
# several engines (and pytest) share this 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    from autellix_ray.tiny_model import default_tiny_model_path

    return default_tiny_model_path()
