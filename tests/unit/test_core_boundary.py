"""The policy core must import without ray, vllm or torch."""

import subprocess
import sys


def test_importing_the_core_loads_no_ray_vllm_or_torch():
    code = (
        "import sys, autellix_ray.core, autellix_ray.core.scheduling, autellix_ray.core.routing\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'vllm', 'torch'))\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
