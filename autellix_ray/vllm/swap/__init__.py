"""Swap preemption for vLLM 0.32: keep a preempted call's KV in a bounded host pool.

vLLM V1 preempts by recompute: the victim's blocks go back to the pool and, when the
call resumes, its whole context is prefilled again (minus prefix-cache hits that
survived). Autellix preempts often, so this connector keeps the victim's KV instead:

    kv_transfer_config={
        "kv_connector": "AutellixSwapConnector",
        "kv_connector_module_path": "autellix_ray.vllm.swap_connector",
        "kv_role": "kv_both",
        "kv_connector_extra_config": {"pool_bytes": 1 << 30, "min_swap_tokens": 16},
    }

(``swap_kv_transfer_config(...)`` builds that dict and validates the settings.)

How it works, on vLLM's own connector hooks (nothing in vLLM is patched):

1. Tracking (scheduler process). ``build_connector_meta`` sees every step's
   ``SchedulerOutput``: it keeps each live call's block table (group 0) and how many
   tokens will have KV once the step has run. No scheduler hook is needed, so the
   connector works under stock vLLM schedulers too.
2. Swap-out. A preempted call shows up in ``SchedulerOutput.preempted_req_ids``
   (``Scheduler._preempt_request`` adds it) in the step that preempts it. Its blocks
   are already back in the free pool and may be handed to another call in that very
   step, but nothing writes them before the worker's ``execute_model`` runs
   ``connector.handle_preemptions(metadata)``, its first statement
   (``v1/worker/gpu_model_runner.py``, inherited by ``CPUModelRunner``), ahead of
   new-block zeroing (``_update_states``), copy-on-write copies and the forward pass.
   The worker gathers all the victim's blocks, every layer, into ONE contiguous host
   buffer with ``autellix_ray.kernels`` (``swap_out``; ``triton_swap_out`` on GPUs).
3. Resume. When vLLM re-admits the call, ``get_num_new_matched_tokens`` reports the
   swapped tokens beyond the local prefix-cache hit; vLLM allocates blocks for them
   and marks the step ``has_sync_kv_loads``, so the worker's ``start_load_kv`` runs
   before the forward (after zeroing) and scatters the buffer into the new blocks
   (``swap_in``). The host entry is released right after. vLLM counts loaded tokens
   as computed: the call continues with zero recomputed prompt tokens.
4. Bounded pool. Admission is decided in the scheduler process against
   ``pool_bytes``: when a new victim does not fit, the lowest-priority entries are
   dropped (those calls fall back to recompute), possibly the newcomer itself.
   Priority is vLLM's ``(request.priority, arrival_time)`` unless a scheduler hands
   the connector a key with ``set_priority_key`` (the Autellix scheduler: its
   program-level queue key). Entries being loaded in the current step are pinned.
   The worker double-checks the bound, and a load that finds no buffer is reported
   through ``get_block_ids_with_load_errors`` so vLLM recomputes instead.
5. Cost rule. Calls with fewer than ``min_swap_tokens`` computed tokens are not
   swapped (recompute is cheaper than a transfer for very short contexts); set 0 to
   swap everything.
6. Lifetime. A finished or aborted call's entry is dropped in ``request_finished``
   and freed by the worker in the next step (vLLM runs one more step to deliver
   ``finished_req_ids``); ``shutdown`` clears the pool.

Each call's final ``kv_transfer_params["autellix_swap"]`` reports its swap counters
and the pool's state (bytes, peak, entries, as accounted by the scheduler and as
measured in the worker). The Autellix scheduler adds its own ``"autellix"`` report
(``num_recomputed_tokens`` counts swapped-in tokens as not recomputed).

Limits: one KV cache group of attention layers whose block index is the first
dimension (vLLM 0.32 dense/GQA models; hybrid models disable swapping with a
warning); synchronous loads (the transfer sits on the step's critical path; on GPUs
a copy stream could overlap it); with speculative decoding the tracked token count
may include rejected drafts, so it is capped at the call's known tokens.

Modules: settings.py (names, ``SwapSettings``, ``swap_kv_transfer_config``), plan.py (the
scheduler side: ``SwapPlanner`` and the bounded ``SwapPool``; no torch, no vLLM), worker.py
(``SwapWorker``: the copies), connector.py (``AutellixSwapConnector``, vLLM's interface).
``autellix_ray.vllm.swap_connector`` re-exports them under the path users configure. This
package imports only settings.py; import the connector from its module.
"""

from autellix_ray.vllm.swap.settings import (
    CONNECTOR_NAME,
    MODULE_PATH,
    SWAP_REPORT_KEY,
    SwapSettings,
    swap_kv_transfer_config,
)

__all__ = ["CONNECTOR_NAME", "MODULE_PATH", "SWAP_REPORT_KEY", "SwapSettings", "swap_kv_transfer_config"]
