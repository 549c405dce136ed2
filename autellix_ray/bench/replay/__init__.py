"""GPU-scale replay of agent workloads through vLLM's real scheduler (see engine.py)."""
