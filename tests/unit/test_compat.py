"""The compat modules: pinned versions, required private members, the report tap."""

import re
from types import SimpleNamespace

import pytest

from autellix_ray.serve import _compat as serve_compat
from autellix_ray.vllm import _compat as vllm_compat


@pytest.mark.parametrize("version", ["0.32.0", "0.32.0+cpu"])
def test_vllm_version_check_accepts_the_pinned_release_with_any_local_suffix(version):
    vllm_compat.check_vllm_version(version)


@pytest.mark.parametrize("version", ["0.33.0", "0.31.2+cpu", "0.32.1", "not-a-version"])
def test_vllm_version_check_rejects_other_releases(version):
    with pytest.raises(ImportError, match=r"needs vllm 0\.32\.0.*found " + re.escape(repr(version))):
        vllm_compat.check_vllm_version(version)


def test_ray_version_check():
    serve_compat.check_ray_version("2.60.0")
    for version in ("2.61.0", "2.59.0", "3.0.0.dev0", "nope"):
        with pytest.raises(ImportError, match=r"ray==2\.60\.0.*found " + re.escape(repr(version))):
            serve_compat.check_ray_version(version)


class Fake:
    declared = 1

    def __init__(self):
        self.assigned = 2
        self.annotated: int = 3
        self.compared_only == 4  # noqa: B015 - a comparison is not an assignment

    def method(self):
        pass


def test_missing_members_sees_class_attributes_and_assignments_in_the_source():
    names = ("declared", "assigned", "annotated", "method", "compared_only", "gone")
    assert vllm_compat.missing_members(Fake, names) == ["compared_only", "gone"]
    with pytest.raises(ImportError, match=r"test_compat\.Fake\.gone.*vllm==0\.32\.0"):
        vllm_compat.check_members({Fake: ("assigned", "gone")})
    vllm_compat.check_members({Fake: ("declared", "method")})


def _server(processor):
    return SimpleNamespace(engine=SimpleNamespace(_engine_client=SimpleNamespace(output_processor=processor)))


def test_tap_sees_every_output_and_keeps_the_processor_working():
    calls = []
    processor = SimpleNamespace(process_outputs=lambda outs, *a, **k: calls.append((outs, a, k)) or "result")
    seen = []
    serve_compat.tap_output_processor(_server(processor), seen.append)
    assert processor.process_outputs(["o1", "o2"], 5, flag=True) == "result"
    assert seen == ["o1", "o2"] and calls == [(["o1", "o2"], (5,), {"flag": True})]


@pytest.mark.parametrize(
    "server, missing",
    [
        (SimpleNamespace(), "SimpleNamespace.engine"),
        (SimpleNamespace(engine=SimpleNamespace()), "engine._engine_client"),
        (_server(None), "_engine_client.output_processor"),
        (_server(SimpleNamespace()), "output_processor.process_outputs"),
    ],
)
def test_tap_fails_loudly_naming_the_missing_link(server, missing):
    with pytest.raises(RuntimeError, match=rf"{missing} is missing.*ray==2\.60\.0 and vllm==0\.32\.0"):
        serve_compat.tap_output_processor(server, lambda out: None)
