"""Application builder for ``serve run`` and for Python: ``build_app(args)``.

    serve run deployments/local-cpu.yaml        # import_path: autellix_ray.serve.app:build_app

``AppArgs`` are the YAML ``args``. ``system: autellix`` (default) deploys engines with
the Autellix scheduler, the program-table and router actors, and the program-aware
ingress; ``system: stock`` deploys the same engines as stock Ray Serve LLM (vLLM
FCFS, Ray Serve's default router, no program table): the live benchmark's baseline.
With ``accelerator: cpu`` and no ``model_source`` the tiny test model is generated
locally (no download).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.llm import LLMConfig, build_llm_deployment
from ray.serve.llm.ingress import OpenAiIngress, make_fastapi_ingress

from autellix_ray.core import SCHEDULING_POLICIES
from autellix_ray.core.routing.locality import DEFAULT_SHORT_PROMPT_TOKENS
from autellix_ray.serve._compat import ingress_app, to_model_metadata
from autellix_ray.vllm import autellix_engine_kwargs

CPU_ENV = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "RAY_AUTH_MODE": "disabled"}


class AppArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: Literal["autellix", "stock"] = "autellix"
    model_id: str = "tiny"
    model_source: str | None = None  # path or hub id; None on CPU = the generated tiny model
    accelerator: Literal["cpu", "gpu"] = "cpu"
    num_replicas: int | Literal["auto"] = Field(2)
    autoscaling_config: dict[str, Any] | None = None  # with num_replicas: auto
    policy: str = "plas"
    policy_settings: dict[str, Any] = Field(default_factory=dict)
    short_prompt_tokens: int = DEFAULT_SHORT_PROMPT_TOKENS
    # the router actor's policy (serve/router.py): "autellix" = Algorithm 2 (long prompts follow their
    # program's pin), "kv_cost" = the KV-aware cost router (every program call, docs/scale.md)
    router_policy: Literal["autellix", "kv_cost"] = "autellix"
    router_shards: int = 1  # router actors; a program's calls go to one by program-id hash (docs/scale.md)
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    max_ongoing_requests: int = 256
    # Custom Ray resources each engine replica asks for, added to its placement-group bundle
    # (accelerator: cpu). Engines then run only on nodes started with them: {"autellix_engine": 1}
    # with nodes started with resources={"autellix_engine": 1} is one engine per node (tests/serve).
    engine_resources: dict[str, float] = Field(default_factory=dict)
    program_idle_timeout_s: float = 600.0
    # HTTP guard (serve/guard.py): API keys (None: $AUTELLIX_API_KEYS, comma-separated;
    # empty: no check) and the bound on calls in flight per ingress replica (then 429)
    api_keys: list[str] | None = None
    max_pending_calls: int | None = 1024
    route_prefix: str = "/"

    def model_post_init(self, context: Any, /) -> None:
        if self.policy not in SCHEDULING_POLICIES or self.policy == "srpt":
            valid = sorted(p for p in SCHEDULING_POLICIES if p != "srpt")
            raise ValueError(f"policy must be one of {valid} (srpt is simulation-only), got {self.policy!r}")
        if self.num_replicas == "auto" and not self.autoscaling_config:
            raise ValueError("num_replicas: auto needs autoscaling_config (min_replicas, max_replicas)")
        if isinstance(self.num_replicas, int) and self.num_replicas < 1:
            raise ValueError(f"num_replicas must be >= 1, got {self.num_replicas}")
        if self.engine_resources and self.accelerator != "cpu":
            raise ValueError("engine_resources is for accelerator: cpu (on GPUs the engines' bundles are vLLM's)")
        if any(not amount > 0 for amount in self.engine_resources.values()):
            raise ValueError(f"engine_resources amounts must be > 0, got {self.engine_resources}")
        if self.router_shards < 1:
            raise ValueError(f"router_shards must be >= 1, got {self.router_shards}")
        if self.short_prompt_tokens < 0:
            raise ValueError("short_prompt_tokens must be >= 0")
        if self.max_pending_calls is not None and self.max_pending_calls < 1:
            raise ValueError(f"max_pending_calls must be >= 1 (or null: unbounded), got {self.max_pending_calls}")


def _model_source(args: AppArgs) -> str:
    if args.model_source:
        return str(Path(args.model_source).expanduser()) if args.model_source.startswith(("~", "/", ".")) else args.model_source
    if args.accelerator == "gpu":
        raise ValueError("accelerator: gpu needs model_source (e.g. meta-llama/Llama-3.1-8B-Instruct)")
    from autellix_ray.tiny_model import default_tiny_model_path

    return default_tiny_model_path()


def llm_config(args: AppArgs) -> LLMConfig:
    engine_kwargs = dict(args.engine_kwargs)
    if args.system == "autellix":
        engine_kwargs.update(
            autellix_engine_kwargs(
                args.policy, async_scheduling=args.accelerator == "gpu", **args.policy_settings
            )
        )
    deployment: dict[str, Any] = {"max_ongoing_requests": args.max_ongoing_requests}
    if args.num_replicas == "auto":
        deployment["autoscaling_config"] = args.autoscaling_config
    else:
        deployment["num_replicas"] = args.num_replicas
    config: dict[str, Any] = {
        "model_loading_config": {"model_id": args.model_id, "model_source": _model_source(args)},
        "engine_kwargs": engine_kwargs,
        "deployment_config": deployment,
    }
    if args.system == "autellix":
        config["server_cls"] = "autellix_ray.serve.server:AutellixLLMServer"
        deployment["request_router_config"] = {
            "request_router_class": "autellix_ray.serve.router:AutellixRequestRouter",
            "request_router_kwargs": {"short_prompt_tokens": args.short_prompt_tokens, "policy": args.router_policy,
                                      "shards": args.router_shards},
        }
    if args.accelerator == "cpu":
        config["placement_group_config"] = {"bundles": [{"CPU": 1, **args.engine_resources}]}
        config["runtime_env"] = {"env_vars": dict(CPU_ENV)}
    return LLMConfig(**config)


def _guarded_fastapi_app(args: AppArgs):
    from autellix_ray.serve.guard import GuardMiddleware, key_digests

    app = ingress_app()  # Ray Serve LLM's FastAPI app with its middleware; ours is added last, so runs first
    app.add_middleware(GuardMiddleware, key_digests=key_digests(args.api_keys), max_pending_calls=args.max_pending_calls)
    return app


def build_app(args: dict[str, Any] | AppArgs | None = None):
    """The Ray Serve application (ingress + engine deployment) described by ``args``."""
    args = args if isinstance(args, AppArgs) else AppArgs.model_validate(args or {})
    config = llm_config(args)
    engines = build_llm_deployment(config)
    cards = {config.model_id: to_model_metadata(config.model_id, config)}
    if args.system == "autellix":
        from autellix_ray.serve.ingress import ENDPOINTS, AutellixIngress
        from autellix_ray.serve.program_table import get_or_create_program_table
        from autellix_ray.serve.router import get_or_create_router

        table = get_or_create_program_table(idle_timeout_s=args.program_idle_timeout_s)
        for shard in range(args.router_shards):
            get_or_create_router(table=table, shard=shard, short_prompt_tokens=args.short_prompt_tokens,
                                 policy=args.router_policy)
        ingress_cls = make_fastapi_ingress(AutellixIngress, endpoint_map=ENDPOINTS, app=_guarded_fastapi_app(args))
        options = AutellixIngress.get_deployment_options([config])
    else:
        ingress_cls = make_fastapi_ingress(OpenAiIngress)
        options = OpenAiIngress.get_deployment_options([config])
    return serve.deployment(ingress_cls, **options).bind(
        llm_deployments={config.model_id: engines}, model_cards=cards, lora_paths={}
    )
