"""The Autellix scheduler for vLLM 0.32: stock V1 scheduling in a program-aware order.

Select it with ``scheduler_cls="autellix_ray.vllm.AutellixScheduler"`` (or
``AutellixAsyncScheduler`` where async scheduling is on, i.e. on GPUs) and pick
the policy in ``additional_config={"autellix": {...}}`` (see ``settings.py``).

What it changes, and nothing else (prefix caching, chunked prefill, KV
allocation, aborts, streaming, stop strings and ``n > 1`` are vLLM's own code):
1. Order. Waiting calls sit in a ``PolicyOrderedQueue`` (queue level, then
   program or call arrival: ``order_within_queue``); running calls are re-sorted by
   the same key before every step, so the stock loop serves them best-first and its
   KV-pressure victim (``running[-1]``) is the lowest-priority call. vLLM keeps a
   second waiting queue, ``kv_holding_waiting``, for waiting calls that already hold
   KV blocks (async KV loads, e.g. a swap-in), and always drains it before
   ``waiting``: those calls would otherwise pin their blocks while others run. We
   keep that rule (it frees memory) and order that queue by the policy too.
2. Proactive preemption (``_preempt_for_waiting``, the one place a swap
   connector can hook into). Stock V1 never lets a waiting call displace a
   running one when max_num_seqs, the token budget or the KV cache is full. Here,
   when capacity is full and the best waiting calls outrank the worst running
   ones (a strictly better queue), up to ``max_preemptions_per_step`` of those
   running calls are preempted through vLLM's own ``_preempt_request`` (recompute;
   their freed blocks keep prefix-cache hashes). Cost-aware: a running call is a
   victim only if it has run ``preempt_min_run_steps`` steps since it was last
   admitted (hysteresis: no evicting what was just admitted) and, unless a swap
   connector keeps preempted KV on the host, the tokens it has computed are at most
   ``preempt_max_victim_tokens`` (what a recompute would re-prefill if its blocks
   are evicted meanwhile). The walk stops at the first running call that is not
   a victim, so a better call never displaces a long context to get in.
3. Service accounting (``core.ServiceModel``). By default (``service_unit="work"``)
   a call attains the batch-1 time of the tokens it computed in a step, which does
   not inflate with the batch size. With ``service_unit="wall"`` (the paper's
   "model-executor time") each step's duration (from the end of ``schedule()``, or
   of the previous step's output processing under async scheduling, to the start of
   ``update_from_output``) is credited in full to every call in the batch. Waiting
   time is always wall time. Demotion and anti-starvation run on these numbers
   (``policy.on_step``).
4. Reporting. When a call finishes or is aborted, its program row is updated in
   the engine-local table and a report (``FinishedCall``'s fields: service, wait,
   priority, critical-path start, final queue, promotions and demotions; plus
   preemptions, recomputed and cached prompt tokens, aborted, engine KV usage) is attached to the request's ``kv_transfer_params``
   under ``"autellix"``: it reaches ``RequestOutput.kv_transfer_params`` and the
   OpenAI response body, so a caller can update a cluster-wide program table.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.core.sched.request_queue import SchedulingPolicy as VllmQueuePolicy
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request, RequestStatus

from autellix_ray.core import FinishedCall
from autellix_ray.vllm.context import call_from_request
from autellix_ray.vllm.queue import PolicyOrderedQueue
from autellix_ray.vllm.settings import PluginSettings
from autellix_ray.vllm.swap.connector import wire_swap_priority

logger = logging.getLogger(__name__)

REPORT_KEY = "autellix"
GC_EVERY_STEPS = 1024  # idle-program garbage collection of the engine-local table
_REPORT_FIELDS = tuple(f.name for f in fields(FinishedCall))


@dataclass
class PluginCounters:
    """Engine-lifetime counters (also the source of the plugin's metrics)."""

    num_calls: int = 0
    num_finished: int = 0
    num_proactive_preemptions: int = 0
    num_resumed: int = 0
    num_resumed_computed_tokens: int = 0  # tokens resumed calls had computed before preemption
    num_recomputed_tokens: int = 0  # of those, how many were not prefix-cache hits on resume
    num_promotions: int = 0
    num_demotions: int = 0


@dataclass
class _CallExtras:
    num_computed_at_preemption: int = 0
    num_recomputed_tokens: int = 0
    num_cached_tokens: int = 0  # prefix-cache hit when first admitted
    admitted: bool = False
    preempted: bool = False
    admitted_at_step: int = 0  # ``_num_outputs`` when last scheduled from waiting (hysteresis)


class AutellixSchedulerMixin:
    """The Autellix behaviour; mixed into vLLM's Scheduler or AsyncScheduler."""

    clock = staticmethod(time.monotonic)  # tests replace it on an instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.policy != VllmQueuePolicy.FCFS:
            raise ValueError(
                "AutellixScheduler orders calls itself: run vLLM with scheduling_policy='fcfs' "
                f"(got {self.policy.value!r}); pick the Autellix policy in "
                "additional_config={'autellix': {'policy': ...}}"
            )
        self.autellix_settings = PluginSettings.from_vllm_config(self.vllm_config)
        self.program_policy = self.autellix_settings.make_policy()
        self.waiting = PolicyOrderedQueue(self.program_policy)
        self.kv_holding_waiting = PolicyOrderedQueue(self.program_policy)  # see the module header
        self.autellix_counters = PluginCounters()
        self._extras: dict[str, _CallExtras] = {}
        self._scheduled_at: deque[tuple[SchedulerOutput, float]] = deque()
        self._last_output_s: float | None = None
        self._num_outputs = 0
        self._running_order_stale = True  # re-sort running before the next step
        # How (``_sort_running``): running was sorted and calls were appended (``_appended``)
        # since, or in full (a queue moved or the order is unknown).
        self._appended: list[Request] = []
        self._full_sort = True
        self._num_preempted = 0  # preemptions inside the stock schedule() (they leave running)
        self._awaiting_resume: set[str] = set()  # preempted calls not yet rescheduled
        self._ranks_version = self.program_policy.ranks_version
        logger.info(
            "Autellix scheduler: policy=%s queues=%s service=%s max_preemptions_per_step=%d",
            self.autellix_settings.policy,
            self.autellix_settings.queue_config_summary(),
            self.autellix_settings.service,
            self.autellix_settings.max_preemptions_per_step,
        )
        wire_swap_priority(self)  # no-op unless the swap connector is configured

    # -- arrivals -----------------------------------------------------------
    def add_request(self, request: Request) -> None:
        if request.request_id not in self.requests:
            self.program_policy.add(call_from_request(request), self.clock())
            self._extras[request.request_id] = _CallExtras()
            self.autellix_counters.num_calls += 1
        super().add_request(request)

    # -- scheduling ---------------------------------------------------------
    def schedule(self, *args: Any, **kwargs: Any) -> SchedulerOutput:
        now = self.clock()
        if self._running_order_stale and self.running:
            self._sort_running()
        elif self._appended or not self.running:
            self._appended = []
            self._full_sort = bool(self.running)  # left unsorted (or empty: sorted)
        self._running_order_stale = False
        self._preempt_for_waiting(now)
        num_kept = len(self.running)
        self._num_preempted = 0
        output = super().schedule(*args, **kwargs)
        num_kept -= self._num_preempted
        if len(self.running) > num_kept >= 0:  # the stock loop appends what it admits
            self._appended += self.running[num_kept:]
        elif num_kept < 0 or len(self.running) < num_kept:  # it never removes without preempting
            self._full_sort = True
        if output.scheduled_new_reqs or self._awaiting_resume:
            self._running_order_stale = True  # admitted calls were appended at the end
            for rid in self._awaiting_resume & output.num_scheduled_tokens.keys():
                self._extras[rid].admitted_at_step = self._num_outputs
            self._count_recomputation(output)
            for new in output.scheduled_new_reqs:
                extras = self._extras.get(new.req_id)
                if extras is not None and not extras.admitted:  # (V2 runner lists resumes here too)
                    extras.admitted = True
                    extras.admitted_at_step = self._num_outputs
                    extras.num_cached_tokens = new.num_computed_tokens
        self._scheduled_at.append((output, self.clock()))
        return output

    def _sort_running(self) -> None:
        """Best first, so the stock loop serves by priority and its victim is running[-1].

        Incremental when only admissions changed it (the common case): it was sorted, and the calls
        appended since are still its tail; they are put back by bisection (keys are unique, so the
        order is the one a full sort gives).
        """
        policy = self.program_policy
        last = (float("inf"),)
        keys = policy.live_keys()
        appended, self._appended = self._appended, []
        running = self.running
        if keys is None:
            running.sort(key=lambda r: policy.key(r.request_id) if r.request_id in policy else last)
            return
        key = lambda r: keys.get(r.request_id, last)
        if not self._full_sort:
            n = len(appended)
            # (list == compares by identity first: cheap for the same Request objects)
            if 0 < n <= len(running) and running[-n:] == appended and all(r.request_id in keys for r in appended):
                del running[-n:]
                for request in appended:
                    bisect.insort(running, request, key=key)
                return
            if n == 0:
                return  # nothing moved: still sorted
        self._full_sort = False
        running.sort(key=key)

    def _capacity_full(self) -> bool:
        if len(self.running) >= self.max_num_active_reqs:
            return True
        # one token per decoding call, plus what prefilling calls still need
        pending_tokens = len(self.running) + sum(
            r.num_tokens - r.num_computed_tokens for r in self._inflight_prefills
        )
        if pending_tokens >= self.max_num_scheduled_tokens:
            return True
        head = self.waiting.peek_request()
        blocks_needed = -(-max(1, head.num_tokens - head.num_computed_tokens) // self.block_size)
        return self.kv_cache_manager.block_pool.get_num_free_blocks() < blocks_needed

    def _preempt_for_waiting(self, now: float) -> None:
        """Preempt the lowest-priority running calls that waiting calls outrank."""
        limit = self.autellix_settings.max_preemptions_per_step
        if limit == 0 or not self.waiting or not self.running or not self._capacity_full():
            return
        policy = self.program_policy
        victims: list[Request] = []
        for candidate in self.waiting.first(limit):
            if len(victims) == len(self.running):
                break
            victim = self.running[-1 - len(victims)]
            cid, vid = candidate.request_id, victim.request_id
            if cid not in policy or vid not in policy or not policy.outranks(cid, vid):
                break
            if not self._worth_preempting(victim):
                break
            victims.append(victim)
        for victim in victims:
            self.running.remove(victim)
            self._preempt_request(victim, now)
            self.autellix_counters.num_proactive_preemptions += 1

    def _worth_preempting(self, victim: Request) -> bool:
        """Hysteresis and the recompute-cost bound of proactive preemption (module header)."""
        settings = self.autellix_settings
        extras = self._extras.get(victim.request_id)
        if extras is not None and self._num_outputs - extras.admitted_at_step < settings.preempt_min_run_steps:
            return False
        bound = settings.preempt_max_victim_tokens
        swapped = getattr(self, "connector", None) is not None and hasattr(self.connector, "set_priority_key")
        return bound is None or swapped or victim.num_computed_tokens <= bound

    def _preempt_request(self, request: Request, timestamp: float, *args: Any, **kwargs: Any) -> None:
        # Every preemption (ours or vLLM's KV-pressure one) comes through here.
        self._num_preempted += 1
        extras = self._extras.get(request.request_id)
        if extras is not None:
            extras.preempted = True
            extras.num_computed_at_preemption = request.num_computed_tokens
            self._awaiting_resume.add(request.request_id)
        super()._preempt_request(request, timestamp, *args, **kwargs)

    def _count_recomputation(self, output: SchedulerOutput) -> None:
        """For calls resumed this step: tokens computed before preemption minus prefix-cache hits."""
        scheduled = output.num_scheduled_tokens
        for rid in [r for r in self._awaiting_resume if r in scheduled]:
            self._awaiting_resume.discard(rid)
            extras = self._extras.get(rid)
            if extras is None or not extras.preempted:
                continue
            num_scheduled = scheduled[rid]
            request = self.requests[rid]
            cached = request.num_computed_tokens - num_scheduled  # hit at admission
            recomputed = max(0, extras.num_computed_at_preemption - cached)
            extras.preempted = False
            extras.num_recomputed_tokens += recomputed
            counters = self.autellix_counters
            counters.num_resumed += 1
            counters.num_resumed_computed_tokens += extras.num_computed_at_preemption
            counters.num_recomputed_tokens += recomputed

    # -- step results -------------------------------------------------------
    def update_from_output(self, scheduler_output: SchedulerOutput, *args: Any, **kwargs: Any) -> Any:
        now = self.clock()
        started = self._step_start(scheduler_output, now)
        step_s = max(0.0, now - started)
        served = self.autellix_settings.service.step_services_s(scheduler_output.num_scheduled_tokens, step_s)
        policy = self.program_policy
        demotions_before = policy.num_demotions
        promoted = policy.on_step(served, now, step_s)
        if policy.num_demotions != demotions_before or promoted:
            self._running_order_stale = True
            self._full_sort = True  # some keys changed
        self.autellix_counters.num_demotions += policy.num_demotions - demotions_before
        if promoted:
            self.autellix_counters.num_promotions += len(promoted)
            self.waiting.rekey(promoted)
            self.kv_holding_waiting.rekey(promoted)
        if policy.ranks_version != self._ranks_version:  # the queues' order changed: every key did
            self._ranks_version = policy.ranks_version
            self._running_order_stale = True
            self._full_sort = True
            for queue in (self.waiting, self.kv_holding_waiting):
                queue.rekey([r.request_id for r in queue])
        result = super().update_from_output(scheduler_output, *args, **kwargs)
        self._num_outputs += 1
        if self._num_outputs % GC_EVERY_STEPS == 0:
            policy.table.collect_idle(now)
        self._last_output_s = self.clock()
        return result

    def _step_start(self, scheduler_output: SchedulerOutput, now: float) -> float:
        """When the executor began this step: after its schedule() and after the previous step.

        Synchronously the two coincide in order; under async scheduling step N+1 is
        scheduled while step N runs, so it starts when step N's output is done.
        """
        scheduled_s = None
        while self._scheduled_at:
            output, at = self._scheduled_at.popleft()
            if output is scheduler_output:
                scheduled_s = at
                break
        known = [t for t in (scheduled_s, self._last_output_s) if t is not None]
        return max(known) if known else now

    # -- completion ---------------------------------------------------------
    def _free_request(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        kv_params, ec_params = super()._free_request(request, *args, **kwargs)
        rid = request.request_id
        extras = self._extras.pop(rid, None)
        self._awaiting_resume.discard(rid)
        if rid in self.program_policy:
            done = self.program_policy.finish(rid, self.clock())
            self.autellix_counters.num_finished += 1
            # The call's report: FinishedCall's fields (core/scheduling/base.py), plus
            report = {name: getattr(done, name) for name in _REPORT_FIELDS}  # asdict(done), faster
            report["num_preemptions"] = request.num_preemptions  # times vLLM preempted it (any cause)
            # prompt tokens computed again on resume (not prefix-cache hits)
            report["num_recomputed_tokens"] = extras.num_recomputed_tokens if extras else 0
            report["aborted"] = request.status == RequestStatus.FINISHED_ABORTED  # client gone, not finished
            report["num_prompt_tokens"] = request.num_prompt_tokens  # its prompt length
            # prompt tokens found in the prefix cache when it was first admitted
            report["num_cached_tokens"] = extras.num_cached_tokens if extras else 0
            report["engine_kv_usage"] = self.kv_cache_manager.usage  # this engine's KV fraction in use
            # (the serve replica adds "engine_id", its replica id)
            kv_params = {**(kv_params or {}), REPORT_KEY: report}
        return kv_params, ec_params

    def autellix_snapshot(self) -> dict[str, Any]:
        """Counters plus queue occupancy, for metrics and tests."""
        levels: dict[int, int] = {}
        policy = self.program_policy
        for rid in policy.order():
            level = policy.level(rid)
            levels[level] = levels.get(level, 0) + 1
        return {
            **asdict(self.autellix_counters),
            "policy": self.autellix_settings.policy,
            "calls_per_level": levels,
            "num_programs": len(policy.table),
        }


class AutellixScheduler(AutellixSchedulerMixin, Scheduler):
    """Autellix on vLLM's synchronous scheduler (CPU engines; async scheduling off)."""


class AutellixAsyncScheduler(AutellixSchedulerMixin, AsyncScheduler):
    """Autellix on vLLM's async scheduler (GPU engines, where async scheduling is on)."""
