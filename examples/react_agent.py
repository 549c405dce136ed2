"""A ReAct agent (model -> tool -> model ...) with real local tools: a calculator, a regex
file search over a folder, a small key-value store.

Against the app of deployments/local-cpu.yaml (ray start --head --num-cpus 8; serve run it):

    .venv/bin/python examples/react_agent.py                        # OpenAI client over HTTP
    .venv/bin/python examples/react_agent.py --via actor            # in a Ray actor, deployment handles
    .venv/bin/python examples/react_agent.py --scripted             # lengths and tool delays from a trace program
    .venv/bin/python examples/react_agent.py --trace docs/results/live_trace.jsonl --program react-0-0001
    .venv/bin/python examples/react_agent.py --free-tools           # real model: run the TOOL: line it writes
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

if __name__ == "__main__":
    p = _common.parser(__doc__)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--folder", default=str(Path(__file__).resolve().parents[1] / "autellix_ray"))
    p.add_argument("--free-tools", action="store_true", help="parse TOOL: name(arg) from the reply (real models)")
    a = p.parse_args()
    _common.run(a, "react", steps=a.steps, folder=a.folder, scripted=not a.free_tools)
