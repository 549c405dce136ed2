"""The shipped configs: valid Ray Serve / cluster schemas, and the app arguments they carry."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["deployments/local-cpu.yaml", "deployments/gpu.yaml"])
def test_serve_configs_validate_against_ray_serves_schema(name):
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(load(name))
    (app,) = schema.applications
    assert app.import_path == "autellix_ray.serve.app:build_app"


@pytest.mark.parametrize("name", ["deployments/local-cpu.yaml", "deployments/gpu.yaml"])
def test_app_args_and_llm_config_build(name, tmp_path, monkeypatch):
    from autellix_ray.serve import app as app_module

    monkeypatch.setenv("AUTELLIX_TINY_MODEL", str(tmp_path / "tiny"))
    args = app_module.AppArgs.model_validate(load(name)["applications"][0]["args"])
    if args.accelerator == "cpu":
        monkeypatch.setattr(app_module, "_model_source", lambda a: str(tmp_path / "tiny"))
    config = app_module.llm_config(args)
    kwargs = config.engine_kwargs
    assert kwargs["scheduler_cls"].startswith("autellix_ray.vllm.Autellix")
    assert kwargs["additional_config"]["autellix"]["policy"] == args.policy
    router = config.deployment_config["request_router_config"]["request_router_class"]
    assert router == "autellix_ray.serve.router:AutellixRequestRouter"
    kwargs_of_router = config.deployment_config["request_router_config"]["request_router_kwargs"]
    assert kwargs_of_router["policy"] == args.router_policy
    if args.accelerator == "gpu":
        assert kwargs["scheduler_cls"] == "autellix_ray.vllm.AutellixAsyncScheduler"
        assert config.deployment_config["autoscaling_config"]["max_replicas"] == 8
    else:
        assert kwargs["kv_cache_memory_bytes"] > 0  # vLLM CPU needs an explicit KV size
        assert config.placement_group_config == {"bundles": [{"CPU": 1}]}


def test_stock_system_has_no_autellix_parts(tmp_path, monkeypatch):
    from autellix_ray.serve import app as app_module

    monkeypatch.setattr(app_module, "_model_source", lambda a: str(tmp_path))
    config = app_module.llm_config(app_module.AppArgs(system="stock"))
    assert "scheduler_cls" not in config.engine_kwargs
    assert "request_router_config" not in config.deployment_config


@pytest.mark.parametrize(
    "args, message",
    [
        ({"policy": "lifo"}, "policy must be one of"),
        ({"policy": "srpt"}, "simulation-only"),
        ({"num_replicas": 0}, "num_replicas must be >= 1"),
        ({"num_replicas": "auto"}, "autoscaling_config"),
        ({"colour": "blue"}, "Extra inputs are not permitted"),
        ({"policy_settings": {"beta": -1}}, "beta must be"),
        ({"router_policy": "random"}, "router_policy"),
    ],
)
def test_bad_app_args_fail_with_a_clear_message(args, message, tmp_path, monkeypatch):
    from autellix_ray.serve import app as app_module

    monkeypatch.setattr(app_module, "_model_source", lambda a: str(tmp_path))
    with pytest.raises(ValueError, match=message):
        app_module.llm_config(app_module.AppArgs.model_validate(args))


def test_cluster_file_has_a_head_gpu_workers_and_installs_the_package():
    cluster = load("ray_cluster.yaml")
    assert cluster["head_node_type"] in cluster["available_node_types"]
    workers = [n for n in cluster["available_node_types"] if n != cluster["head_node_type"]]
    assert workers and cluster["available_node_types"][workers[0]]["max_workers"] >= 1
    assert any("autellix-ray[gpu]" in c for c in cluster["setup_commands"])
    assert all(key in cluster for key in ("cluster_name", "provider", "worker_start_ray_commands"))


def test_cluster_file_validates_against_rays_cluster_schema():
    import json

    import jsonschema
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(load("ray_cluster.yaml"), schema)
