"""GPU-scale replay: vLLM's real scheduler on a simulated GPU and a simulated clock.

One ``SimEngine`` wraps one vLLM 0.32 ``Scheduler`` (stock, for the vLLM baselines) or
our ``AutellixScheduler`` (MLFQ, PLAS, ATLAS, SRPT), over a fake KV cache of the GPU's
size (``config.EngineConfig``). A step is exactly what vLLM's engine core does, with the
forward pass replaced by the cost model:

1. ``schedule()`` at simulated time t (the plugin's ``clock`` reads t);
2. the step's duration d comes from ``CostModel.step_cost_totals`` of the batch it
   returned: for each scheduled request with n tokens after c already computed, a
   decode (n = 1 after at least one output token, attention over c + 1 positions) or a
   prefill chunk (n new tokens after c cached/computed ones; prefix-cache hits are in c,
   so they cost nothing); see ``cost_model.py`` for the formula;
3. the clock moves to t + d and the "model" returns one token for every request whose
   prompt is now fully computed (the call's pre-drawn output id, so later prompts that
   contain this output hit the prefix cache; ``prompts.py``);
4. ``update_from_output``; finished calls are handed back to the programs.

``replay()`` runs a workload on one or more engines: a discrete-event loop over program
arrivals (the workload's Poisson times), call issues and engine step completions.
Programs are closed loops: a call is issued ``think_time_s`` after its dependencies
finish (its thread's previous call and its parent threads' latest calls;
``ProgramSpec.dependencies()``). With several engines, the cluster tier is the shipped
one (``ClusterTier``): each issued call is routed by core's ``ProgramRouter`` (the router
actor's pins around a ``make_router`` policy) over the engines' loads (running + waiting
calls, KV usage), and, for Autellix policies, registered with core's ``ProgramService`` (the
program-table actor's service) whose state it carries to its engine, as the serving layer
does; finished calls' reports (``kv_transfer_params["autellix"]``) go back to the service at
once (the Serve tier batches them every 50 ms). So PLAS/ATLAS priorities follow a program
across engines by the table's rules, thread-DAG critical path included.

SRPT oracle (clairvoyant, simulation only): every call carries ``remaining_s``, the
work its program still has to do when the call is issued (every call not finished yet,
this one included), in the same units the plugin credits as service (``ServiceModel``:
batch-1 work per prompt token computed and per decoded token; ``call_work_s``), so the
oracle's key (remaining minus service received since) never mixes units. It is a
clairvoyant heuristic, not a lower bound: with batching and prefix caching no order is
known to be optimal.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autellix_ray.bench.cost_model import PCIE4_X16, CostModel
from autellix_ray.bench.replay.config import BLOCK_SIZE, EngineConfig, PolicySpec, get_policy
from autellix_ray.bench.replay.prompts import ProgramPrompts, SharedPrefixes
from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec, Workload
from autellix_ray.core import EngineLoad, ProgramRouter, ProgramService, Router, ServiceModel, make_router
from autellix_ray.tiny_model import default_tiny_model_path

REPORT_KEY = "autellix"


def build_scheduler(model_path: str, policy: PolicySpec, config: EngineConfig):
    """A vLLM scheduler (stock or ours) over a fake KV cache of ``config.blocks`` blocks."""
    from autellix_ray.vllm.offline import make_scheduler

    return make_scheduler(
        model_path,
        policy.autellix_policy,
        max_num_seqs=config.max_num_seqs,
        max_num_batched_tokens=config.max_num_batched_tokens,
        max_model_len=config.max_model_len,
        num_blocks=config.blocks,
        enable_prefix_caching=policy.prefix_caching,
        kv_transfer_config=_swap_config(config) if policy.swap else None,
        **policy.settings,
    )


FAKE_KV_BYTES_PER_BLOCK = BLOCK_SIZE * 1 * (64 + 64) * 4  # make_scheduler's fake layer: 1 KV head of 64, float32


def _swap_config(config: EngineConfig) -> dict[str, Any]:
    """The swap connector's ``kv_transfer_config``, its pool scaled to the fake KV layout.

    The replay's KV cache has one tiny fake layer; the pool bound is set so it holds as many
    blocks as ``swap_host_pool_gib`` holds of the real model's blocks.
    """
    from autellix_ray.vllm.swap_connector import swap_kv_transfer_config

    cm = config.cost_model
    real_block_bytes = BLOCK_SIZE * cm.model.kv_bytes_per_token(cm.tp)
    pool_blocks = int(config.swap_host_pool_gib * 2**30 // real_block_bytes)
    return swap_kv_transfer_config(pool_bytes=pool_blocks * FAKE_KV_BYTES_PER_BLOCK)


@dataclass
class EngineStats:
    """One engine's totals over a replay (``ReplayResult.engines``, written to the results)."""

    num_steps: int = 0  # steps that ran a batch (stalled schedules excluded)
    busy_s: float = 0.0  # simulated time spent in steps (swap time included)
    prefill_tokens: int = 0  # prompt tokens computed (recomputation after preemption included)
    decode_tokens: int = 0  # output tokens decoded after the first (one per decode step and call)
    admitted_prompt_tokens: int = 0  # prompt tokens of calls at their first admission
    prefix_hit_tokens: int = 0  # of those, prefix-cache hits
    num_preemptions: int = 0  # preemptions vLLM's scheduler reported
    swapped_blocks: int = 0  # out and in (swap policies)
    swap_s: float = 0.0  # PCIe time charged for them
    max_running: int = 0  # most calls running in one step
    max_waiting: int = 0  # most calls waiting (queued or preempted) at one step's schedule
    batch_tokens_sum: int = 0  # tokens scheduled, summed over steps (for the mean batch)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["prefix_hit_rate"] = self.prefix_hit_tokens / self.admitted_prompt_tokens if self.admitted_prompt_tokens else 0.0
        d["mean_batch_tokens"] = self.batch_tokens_sum / self.num_steps if self.num_steps else 0.0
        return d


class SimEngine:
    """One vLLM scheduler stepped on a simulated clock by the cost model (module header)."""

    def __init__(self, engine_id: str, scheduler: Any, cost_model: CostModel, kv_capacity_tokens: int = 0,
                 track_waiting_tokens: bool = False) -> None:
        from vllm.v1.outputs import ModelRunnerOutput

        self._mro = ModelRunnerOutput
        self.engine_id = engine_id
        self.scheduler = scheduler
        self.cost_model = cost_model
        self.clock = getattr(scheduler, "clock", None)  # the plugin's FakeClock (None for stock vLLM)
        self.busy_until: float | None = None  # end of the step in flight
        self.stalled = False  # last schedule() found nothing to run; wait for a new call
        self._output = None
        self._planned: dict[str, list[int]] = {}  # request id -> the output ids it will generate
        self._admitted: set[str] = set()
        self._busy_s: dict[str, float] = {}  # request id -> wall time of the steps it was scheduled in
        self.stats = EngineStats()
        self.kv_capacity_tokens = kv_capacity_tokens
        # waiting_tokens (for the routers): prompt tokens past each waiting call's prefix-cache hit at arrival
        self.track_waiting_tokens = track_waiting_tokens
        self._uncached: dict[str, int] = {}
        self._waiting_tokens = 0

    # -- load, as the routers see it ------------------------------------------
    @property
    def num_calls(self) -> int:
        return len(self._planned)

    def load(self) -> EngineLoad:
        s = self.scheduler
        return EngineLoad(self.engine_id, len(s.running), len(s.waiting), s.get_kv_cache_usage(),
                          self.kv_capacity_tokens, self._waiting_tokens)

    def _uncached_tokens(self, request: Any) -> int:
        """The request's prompt tokens past its prefix-cache hit now (vLLM's own lookup, no side effects)."""
        manager = self.scheduler.kv_cache_manager
        if not manager.enable_caching or not request.block_hashes:
            return request.num_tokens
        hit = manager.coordinator.find_longest_cache_hit(request.block_hashes, request.num_tokens - 1)[1]
        return request.num_tokens - hit

    @property
    def has_work(self) -> bool:
        return bool(self._planned)

    # -- calls ------------------------------------------------------------------
    def add(self, request: Any, output_ids: list[int], now: float) -> None:
        if self.clock is not None:
            self.clock.now = now
        self._planned[request.request_id] = output_ids
        if self.track_waiting_tokens:
            n = self._uncached_tokens(request)
            self._uncached[request.request_id] = n
            self._waiting_tokens += n
        self.scheduler.add_request(request)
        self.stalled = False

    # -- steps ------------------------------------------------------------------
    def start_step(self, now: float) -> None:
        """schedule() at ``now``; the step ends at ``busy_until`` (or stalls, if empty)."""
        sched = self.scheduler
        if self.clock is not None:
            self.clock.now = now
        out = sched.schedule()
        stats = self.stats
        if out.preempted_req_ids:
            stats.num_preemptions += len(out.preempted_req_ids)
        for new in out.scheduled_new_reqs:
            rid = new.req_id
            if rid not in self._admitted:
                self._admitted.add(rid)
                self._waiting_tokens -= self._uncached.pop(rid, 0)
                stats.admitted_prompt_tokens += len(new.prompt_token_ids or ())
                stats.prefix_hit_tokens += new.num_computed_tokens
        total = out.total_num_scheduled_tokens
        if total == 0:
            # Nothing fits (e.g. the KV cache): vLLM skips the forward pass.
            sched.update_from_output(out, self._mro(req_ids=[], req_id_to_index={}))
            self.stalled = True
            return
        requests = sched.requests
        p_tok = p_seqs = d_seqs = 0
        pairs = p_kv = d_ctx = 0
        for rid, n in out.num_scheduled_tokens.items():
            r = requests[rid]
            c = r.num_computed_tokens - n  # computed before this step (cache hits included)
            if n == 1 and r.num_output_tokens > 0 and c == r.num_tokens - 1:
                d_seqs += 1
                d_ctx += c + 1
            else:
                p_tok += n
                if c + n >= r.num_tokens:
                    p_seqs += 1  # this chunk completes the prompt: it samples
                pairs += n * c + n * (n + 1) // 2
                p_kv += c + 2 * n
        cost = self.cost_model.step_cost_totals(p_tok, p_seqs, pairs, p_kv, d_seqs, d_ctx).total_s
        swaps = getattr(out.kv_connector_metadata, "swap_outs", None)
        if swaps is not None:  # the swap connector's work this step: outs before, ins inside the step
            for op in (*swaps, *out.kv_connector_metadata.swap_ins):
                if op.block_ids and getattr(op, "entry_id", 0) >= 0:
                    stats.swapped_blocks += len(op.block_ids)
                    t = PCIE4_X16.swap_time_s(self.cost_model, len(op.block_ids), BLOCK_SIZE)
                    stats.swap_s += t
                    cost += t
        busy = self._busy_s
        for rid in out.num_scheduled_tokens:
            busy[rid] = busy.get(rid, 0.0) + cost
        stats.num_steps += 1
        stats.busy_s += cost
        stats.prefill_tokens += p_tok
        stats.decode_tokens += d_seqs
        stats.batch_tokens_sum += total
        stats.max_running = max(stats.max_running, len(sched.running))
        stats.max_waiting = max(stats.max_waiting, len(sched.waiting))
        self._output = out
        self.busy_until = now + cost

    def finish_step(self) -> list[tuple[str, dict | None, float]]:
        """End the step in flight: sample, ``update_from_output``; return the finished calls as
        (request id, the plugin's report or None, wall time of the steps it was scheduled in)."""
        out, end = self._output, self.busy_until
        self._output, self.busy_until = None, None
        if self.clock is not None:
            self.clock.now = end
        requests = self.scheduler.requests
        planned = self._planned
        req_ids, sampled = [], []
        for rid in out.num_scheduled_tokens:
            r = requests[rid]
            req_ids.append(rid)
            if r.num_computed_tokens >= r.num_tokens:
                sampled.append([planned[rid][r.num_output_tokens]])
            else:
                sampled.append([])
        result = self.scheduler.update_from_output(
            out, self._mro(req_ids=req_ids, req_id_to_index={rid: i for i, rid in enumerate(req_ids)},
                           sampled_token_ids=sampled)
        )
        finished = []
        for client_outputs in result.values():
            for o in client_outputs.outputs:
                if o.finish_reason is not None:
                    planned.pop(o.request_id, None)
                    self._admitted.discard(o.request_id)
                    report = (o.kv_transfer_params or {}).get(REPORT_KEY)
                    finished.append((o.request_id, report, self._busy_s.pop(o.request_id, 0.0)))
        return finished


# ---------------------------------------------------------------------------------
def call_work_s(call: CallSpec, service: ServiceModel) -> float:
    """The service the plugin will credit a call with, if its reusable prefix is cached.

    One prefill chunk of its new prompt tokens (which also yields the first output token),
    then one decode step per further output token (``ServiceModel.step_service_s``).
    """
    new = call.prompt_tokens - max(call.reuse_tokens, call.shared_prefix_tokens)
    return service.step_service_s(max(new, 1), 0.0) + (call.decode_tokens - 1) * service.step_service_s(1, 0.0)


@dataclass
class ProgramRecord:
    """One program's outcome (``ReplayResult.programs``; the metrics are computed from these)."""

    program_id: str  # the workload's program id
    kind: str  # its workload (a mixed workload's part), for per-kind metrics
    arrival_s: float  # simulated arrival time
    finish_s: float  # simulated time its last call finished
    num_calls: int  # LLM calls it made
    decode_tokens: int  # output tokens over all its calls (the per-token latency's divisor)
    # Over its calls, whatever the policy: wall time of the engine steps each call was scheduled in
    # (service, as the paper counts it), and the rest of the time from the call's arrival at its
    # engine to its end (wait). wait_s / service_s is the ratio anti-starvation bounds.
    wait_s: float = 0.0
    service_s: float = 0.0

    @property
    def latency_s(self) -> float:
        return self.finish_s - self.arrival_s

    @property
    def latency_per_token_s(self) -> float:
        return self.latency_s / self.decode_tokens


@dataclass
class ReplayResult:
    """What ``replay()`` returns (``metrics.summarize`` and the results files read it)."""

    workload: str  # the workload's name
    policy: str  # the policy's name (``config.POLICIES``)
    rate: float | None  # the workload's arrival rate, programs/s (inf: all at 0; None: unknown)
    num_engines: int  # engines replayed
    router: str  # the router's name ("-" with one engine)
    programs: list[ProgramRecord]  # one per program, in workload order
    engines: list[dict[str, Any]]  # ``EngineStats.as_dict()`` per engine
    sim_time_s: float  # simulated time when the last program finished
    wall_time_s: float  # wall-clock time the replay took
    num_calls: int  # calls issued
    plugin_counters: list[dict[str, Any]] = field(default_factory=list)  # Autellix scheduler counters, per engine
    router_stats: dict[str, Any] | None = None  # the cluster router's pins and decisions (None: one engine)


class _Program:
    __slots__ = ("dependents", "deps_left", "finish_s", "index", "num_done", "prompts", "service_s", "spec", "wait_s",
                 "work", "work_left")

    def __init__(self, index: int, spec: ProgramSpec, prompts: ProgramPrompts, work: list[float] | None) -> None:
        self.index = index
        self.spec = spec
        deps = spec.dependencies()
        self.deps_left = [len(d) for d in deps]
        self.dependents: list[list[int]] = [[] for _ in deps]
        for i, d in enumerate(deps):
            for j in d:
                self.dependents[j].append(i)
        self.num_done = 0
        self.finish_s = math.nan
        self.wait_s = self.service_s = 0.0  # over its calls: see ProgramRecord
        self.prompts = prompts
        self.work = work  # per call, for the SRPT oracle (None otherwise)
        self.work_left = sum(work) if work is not None else 0.0


class ClusterTier:
    """The Serve tier's program table and router services on the replay's simulated clock.

    ``share_state``: register calls with the program table and hand their program's state
    to the engines (Autellix policies); otherwise only the router (and its pins) runs.
    """

    def __init__(self, policy: Router, clock: Callable[[], float], share_state: bool) -> None:
        self.table = ProgramService(clock=clock) if share_state else None
        self.router = ProgramRouter(policy, on_pin=self.table.set_pin if self.table else None)

    def route(self, program_id: str, num_prompt_tokens: int, engines: list[EngineLoad],
              prefix_blocks: tuple = ()) -> str:
        """The engine a call goes to (the first of the router's ranking)."""
        return self.router.route(program_id, num_prompt_tokens, engines, prefix_blocks, BLOCK_SIZE).ranked[0]

    def begin(self, program_id: str, thread_id: str, parent_thread_ids: Sequence[str]) -> dict[str, float]:
        """Register an arriving call; the program state its request carries (none without a table)."""
        if self.table is None:
            return {}
        return dict(self.table.begin_calls([(program_id, thread_id, list(parent_thread_ids))])[0])

    def finished(self, report: dict | None) -> None:
        if self.table is not None and report is not None:
            self.table.report_calls([report])


def replay(
    workload: Workload,
    policy: str | PolicySpec,
    *,
    num_engines: int = 1,
    router: str = "round_robin",
    router_params: dict[str, Any] | None = None,
    engine_config: EngineConfig | None = None,
    model_path: str | None = None,
    seed: int = 0,
    max_sim_s: float = math.inf,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay ``workload`` through ``num_engines`` vLLM schedulers; see the module header.

    Returns one ``ProgramRecord`` per program. ``max_sim_s`` aborts (RuntimeError) a run
    whose simulated time exceeds it; ``on_progress(n)`` is called with the number of
    programs that finished since the last call.
    """
    from autellix_ray.vllm.offline import make_request

    wall0 = time.perf_counter()
    policy = get_policy(policy)
    config = engine_config or EngineConfig()
    cost_model = config.cost_model
    model_path = model_path or default_tiny_model_path()
    engines = [
        SimEngine(f"e{i}", build_scheduler(model_path, policy, config), cost_model, config.blocks * BLOCK_SIZE,
                  track_waiting_tokens=num_engines > 1)
        for i in range(num_engines)
    ]
    by_id = {e.engine_id: e for e in engines}
    route = make_router(router, **(router_params or {}))  # bad names fail here, whatever num_engines
    now = 0.0  # simulated time
    cluster = ClusterTier(route, lambda: now, policy.autellix_policy is not None) if num_engines > 1 else None

    shared = SharedPrefixes(seed)
    service = _service_model(policy) if policy.clairvoyant else None
    programs = [
        _Program(i, p, ProgramPrompts(p, seed, shared), [call_work_s(c, service) for c in p.calls] if service else None)
        for i, p in enumerate(workload.programs)
    ]
    events: list[tuple[float, int, int, int]] = []  # (time, seq, program index, call index)
    seq = itertools.count()
    for prog in programs:
        for i, left in enumerate(prog.deps_left):
            if left == 0:
                heapq.heappush(events, (prog.spec.arrival_s + prog.spec.calls[i].think_time_s, next(seq), prog.index, i))
    calls_of: dict[str, tuple[_Program, int]] = {}
    num_programs_left = len(programs)
    num_calls = 0

    def issue(prog: _Program, i: int) -> None:
        nonlocal num_calls
        call = prog.spec.calls[i]
        pid = prog.spec.program_id
        prompt, output = prog.prompts.build(i)
        extra: dict[str, Any] = {}
        if prog.work is not None:
            extra["remaining_s"] = prog.work_left
        if cluster is None:
            engine = engines[0]
        else:  # as in the Serve tier: the router picks the engine, then the table gives the state
            keys = token_block_keys(prompt) if route.uses_prefix_blocks else ()
            engine = by_id[cluster.route(pid, len(prompt), [e.load() for e in engines], keys)]
            extra.update(cluster.begin(pid, call.thread_id, call.parent_thread_ids))
        rid = f"{pid}:{i}"
        request = make_request(
            prompt=prompt, max_tokens=call.decode_tokens, program=pid, thread=call.thread_id,
            parents=list(call.parent_thread_ids) or None, request_id=rid, extra=extra,
        )
        calls_of[rid] = (prog, i, now)
        engine.add(request, output, now)
        num_calls += 1

    def finished(rid: str, report: dict | None, busy_s: float) -> None:
        nonlocal num_programs_left
        prog, i, issued_s = calls_of.pop(rid)
        prog.service_s += busy_s
        prog.wait_s += max(0.0, now - issued_s - busy_s)
        if prog.work is not None:
            prog.work_left -= prog.work[i]
        if cluster is not None:
            cluster.finished(report)
        prog.num_done += 1
        for j in prog.dependents[i]:
            prog.deps_left[j] -= 1
            if prog.deps_left[j] == 0:
                heapq.heappush(events, (now + prog.spec.calls[j].think_time_s, next(seq), prog.index, j))
        if prog.num_done == len(prog.spec.calls):
            prog.finish_s = now
            prog.prompts = None
            num_programs_left -= 1
            if on_progress is not None:
                on_progress(1)

    while num_programs_left:
        t_event = events[0][0] if events else math.inf
        t_step = min((e.busy_until for e in engines if e.busy_until is not None), default=math.inf)
        now = min(t_event, t_step)
        if now == math.inf:
            stuck = {e.engine_id: e.num_calls for e in engines if e.has_work}
            raise RuntimeError(f"replay deadlocked at {programs_left_ids(programs)[:5]}: engines {stuck}")
        if now > max_sim_s:
            raise RuntimeError(f"simulated time passed max_sim_s={max_sim_s}")
        if t_step <= now:
            for e in engines:
                if e.busy_until is not None and e.busy_until <= now:
                    for rid, report, busy_s in e.finish_step():
                        finished(rid, report, busy_s)
        while events and events[0][0] <= now:
            _, _, p, i = heapq.heappop(events)
            issue(programs[p], i)
        for e in engines:
            if e.busy_until is None and e.has_work and not e.stalled:
                e.start_step(now)

    records = [
        ProgramRecord(p.spec.program_id, p.spec.workload or workload.name, p.spec.arrival_s, p.finish_s,
                      p.spec.num_calls, p.spec.total_decode_tokens, p.wait_s, p.service_s)
        for p in programs
    ]
    counters = []
    for e in engines:
        snap = getattr(e.scheduler, "autellix_snapshot", None)
        if snap is not None:
            s = snap()
            s.pop("calls_per_level", None)
            counters.append(s)
    return ReplayResult(
        workload=workload.name,
        policy=policy.name,
        rate=workload.rate,
        num_engines=num_engines,
        router=router if num_engines > 1 else "-",
        programs=records,
        engines=[e.stats.as_dict() for e in engines],
        sim_time_s=now,
        wall_time_s=time.perf_counter() - wall0,
        num_calls=num_calls,
        plugin_counters=counters,
        router_stats=dict(cluster.router.stats()) if cluster is not None else None,
    )


def token_block_keys(prompt: Sequence[int], block_size: int = BLOCK_SIZE) -> tuple[int, ...]:
    """Chained keys of the prompt's full blocks (as vLLM's block hashes: key i stands for the prefix)."""
    keys, prev = [], 0
    for start in range(0, len(prompt) - block_size + 1, block_size):
        prev = hash((prev, tuple(prompt[start:start + block_size])))
        keys.append(prev)
    return tuple(keys)


def _service_model(policy: PolicySpec) -> ServiceModel:
    from autellix_ray.vllm.settings import PluginSettings

    return PluginSettings.from_mapping({"policy": policy.autellix_policy, **policy.settings}).service


def programs_left_ids(programs: Sequence[_Program]) -> list[str]:
    return [p.spec.program_id for p in programs if math.isnan(p.finish_s)]
