"""Import boundaries: the policy core imports no ray, vllm or torch; the product never imports bench.

Product = ``autellix_ray`` (and ``kernels/``, installed as ``autellix_ray.kernels``) minus
``autellix_ray/bench``. Imports flow one way: product <- bench <- examples and tests.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = "autellix_ray.bench"


def test_importing_the_core_loads_no_ray_vllm_or_torch():
    code = (
        "import sys, autellix_ray.core, autellix_ray.core.scheduling, autellix_ray.core.routing\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'vllm', 'torch'))\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def product_modules() -> dict[str, Path]:
    """{dotted module name: file} of every product module."""
    found = {}
    for base, package in ((ROOT / "autellix_ray", "autellix_ray"), (ROOT / "kernels", "autellix_ray.kernels")):
        for path in base.rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            if name != BENCH and not name.startswith(BENCH + "."):
                found[name] = path
    return found


def imported_modules(name: str, path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level and conditional imports
    included), relative imports resolved; ``from a import b`` counts as ``a`` and ``a.b``;
    ``importlib.import_module("x")`` / ``__import__("x")`` with a literal name count too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{anchor}.{node.module}" if node.module else anchor
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                out.add(node.args[0].value)
    return out


def test_nothing_outside_bench_imports_bench():
    modules = product_modules()
    assert "autellix_ray.core" in modules and "autellix_ray.kernels.swap" in modules  # the walk finds them
    offenders = {
        name: sorted(m for m in imported_modules(name, path) if m == BENCH or m.startswith(BENCH + "."))
        for name, path in sorted(modules.items())
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_import_scan_sees_function_level_and_relative_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n"
        "    from autellix_ray.bench.agents import react_agent\n"
        "    from .. import bench\n"
        "    import importlib\n"
        "    importlib.import_module('autellix_ray.bench.live')\n"
    )
    found = imported_modules("autellix_ray.serve.probe", probe)
    assert {"autellix_ray.bench.agents", "autellix_ray.bench", "autellix_ray.bench.live"} <= found
