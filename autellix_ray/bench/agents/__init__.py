"""Example agent programs for examples/, the demo and the live benchmark: real tools, real calls.

Each agent is a plain async function over a ``Program`` (HTTP or Ray handles), so the
same code runs as an OpenAI-client program and inside a Ray actor:

- tools.py: the real tools (calculator, regex file search, key-value store);
- script.py: scripted mode (``AgentScript``: lengths and delays from a trace program);
- programs.py: ``react_agent``, ``tree_search_agent`` (LATS), ``mapreduce_agent``, ``AGENTS``;
- population.py: ``run_population``, a mixed population arriving at a trace's times;
- actor.py: ``agent_actor_class``, the same agents inside Ray actors (deployment handles).

Two modes. **Free mode** (no ``script``): prompts are text built from the tools'
observations; with a real model, ``scripted=False`` on ``react_agent`` parses a
``TOOL: name(arg)`` line from the reply. **Scripted mode** (``script=AgentScript(spec)``,
``spec`` a ``ProgramSpec`` from a workload trace, the replay benchmark's JSONL format in
``autellix_ray.bench.workloads.trace``): the agent keeps its shape and runs its real
tools, but every call's prompt length, decode length (``max_tokens`` with ``ignore_eos``)
and the delay before it (``think_time_s``: tool time, topped up with a sleep) come from
the trace, so the load is fixed whatever the model writes. The trace programs whose call
layout these agents follow come from ``autellix_ray.bench.workloads.live``.
"""

from autellix_ray.bench.agents.actor import agent_actor_class
from autellix_ray.bench.agents.population import run_population, timed
from autellix_ray.bench.agents.programs import (
    AGENTS,
    mapreduce_agent,
    react_agent,
    run_scripted,
    tree_search_agent,
)
from autellix_ray.bench.agents.script import VOCAB_HIGH, VOCAB_LOW, AgentScript, complete
from autellix_ray.bench.agents.tools import KVStore, calculator, file_search, run_tool_line

__all__ = [
    "AGENTS",
    "VOCAB_HIGH",
    "VOCAB_LOW",
    "AgentScript",
    "KVStore",
    "agent_actor_class",
    "calculator",
    "complete",
    "file_search",
    "mapreduce_agent",
    "react_agent",
    "run_population",
    "run_scripted",
    "run_tool_line",
    "timed",
    "tree_search_agent",
]
