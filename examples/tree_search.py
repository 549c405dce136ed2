"""A LATS-style tree search: parallel expansions as threads with parents (ATLAS uses them),
a value call per child, the best child is expanded next.

    .venv/bin/python examples/tree_search.py                  # OpenAI client over HTTP
    .venv/bin/python examples/tree_search.py --via actor      # in a Ray actor, deployment handles
    .venv/bin/python examples/tree_search.py --scripted       # lengths and delays from a trace program
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

if __name__ == "__main__":
    p = _common.parser(__doc__)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--width", type=int, default=3)
    a = p.parse_args()
    _common.run(a, "lats", depth=a.depth, width=a.width)
