"""Every package directory is installed, and kernels/ installs as autellix_ray.kernels."""

import importlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_directory_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "autellix_ray").rglob("__init__.py")
    }
    on_disk.add("autellix_ray.kernels")
    assert listed == on_disk


def test_kernels_import_as_a_subpackage():
    module = importlib.import_module("autellix_ray.kernels")
    assert Path(module.__file__).resolve().parent == ROOT / "kernels"
