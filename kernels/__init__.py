"""KV-swap kernels (installed as ``autellix_ray.kernels``). Filled in by the swap issue."""
