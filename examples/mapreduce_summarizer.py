"""A map-reduce summariser: one summary call per chunk in parallel (threads map0..mapN),
then one reduce call whose parents are all the map threads.

    .venv/bin/python examples/mapreduce_summarizer.py --file README.md     # OpenAI client over HTTP
    .venv/bin/python examples/mapreduce_summarizer.py --via actor          # in a Ray actor, handles
    .venv/bin/python examples/mapreduce_summarizer.py --scripted           # lengths from a trace program
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

if __name__ == "__main__":
    p = _common.parser(__doc__)
    p.add_argument("--file", help="text to summarise (default: 4 built-in chunks)")
    p.add_argument("--chunk-chars", type=int, default=600)
    a = p.parse_args()
    docs = None
    if a.file:
        text = Path(a.file).read_text(errors="ignore")[:8 * a.chunk_chars]
        docs = [text[i:i + a.chunk_chars] for i in range(0, len(text), a.chunk_chars)]
    _common.run(a, "mapreduce", documents=docs)
