"""``build_app``'s ``engine_resources``: what places one engine per node in the serve tests (no cluster)."""

import pytest


def test_engine_resources_go_into_each_engines_bundle(tmp_path, monkeypatch):
    from autellix_ray.serve import app as app_module

    monkeypatch.setattr(app_module, "_model_source", lambda a: str(tmp_path))
    config = app_module.llm_config(app_module.AppArgs(engine_resources={"autellix_engine": 1}))
    assert config.placement_group_config == {"bundles": [{"CPU": 1, "autellix_engine": 1}]}
    assert app_module.llm_config(app_module.AppArgs()).placement_group_config == {"bundles": [{"CPU": 1}]}


@pytest.mark.parametrize("args, message", [
    ({"engine_resources": {"autellix_engine": 0}}, "must be > 0"),
    ({"engine_resources": {"autellix_engine": 1}, "accelerator": "gpu", "model_source": "m"}, "accelerator: cpu"),
])
def test_bad_engine_resources_fail_with_a_clear_message(args, message):
    from autellix_ray.serve.app import AppArgs

    with pytest.raises(ValueError, match=message):
        AppArgs.model_validate(args)
