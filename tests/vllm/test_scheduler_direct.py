"""The scheduler plugin driven by hand, like vLLM's own scheduler tests (no model runs)."""

import pytest
from vllm.v1.request import RequestStatus

from autellix_ray.vllm.offline import BLOCK_SIZE, make_request, make_scheduler, step

pytestmark = pytest.mark.vllm

BOUNDS = (0.0, 0.5, 1.0, 2.0)


def run_until_done(scheduler, max_steps=500, step_s=0.1):
    finished = {}
    for _ in range(max_steps):
        if not scheduler.requests:
            return finished
        _, done = step(scheduler, step_s)
        finished.update(done)
    raise AssertionError("requests did not finish")


def heavy(prompt_len=32, max_tokens=8, service=3.0, **kw):
    """A call of a program that already received ``service`` seconds (bottom queues)."""
    state = {"program_service_s": service, "program_critical_path_s": service}
    return make_request(prompt_len, max_tokens, extra=state, **kw)


def test_waiting_calls_follow_program_attained_service(tiny_model_path):
    s = make_scheduler(tiny_model_path, "plas", max_num_seqs=1, boundaries_s=BOUNDS, beta=None)
    old = heavy(program="old")
    new = make_request(32, 4, program="new")
    s.add_request(old)
    s.add_request(new)
    out, _ = step(s)
    assert list(out.num_scheduled_tokens) == [new.request_id]


def test_stock_fcfs_keeps_arrival_order(tiny_model_path):
    s = make_scheduler(tiny_model_path, None, max_num_seqs=1)
    old, new = heavy(program="old"), make_request(32, 4, program="new")
    s.add_request(old)
    s.add_request(new)
    out, _ = step(s)
    assert list(out.num_scheduled_tokens) == [old.request_id]


def test_proactive_preemption_when_max_num_seqs_is_full(tiny_model_path):
    s = make_scheduler(tiny_model_path, "plas", max_num_seqs=2, boundaries_s=BOUNDS, beta=None)
    low = [heavy(max_tokens=50, program=f"low{i}") for i in range(2)]
    for r in low:
        s.add_request(r)
    step(s)
    step(s)
    urgent = make_request(16, 4, program="fresh")
    s.add_request(urgent)
    out, _ = step(s)
    assert urgent.request_id in out.num_scheduled_tokens
    preempted = [r for r in low if r.status == RequestStatus.PREEMPTED]
    assert len(preempted) == 1 and preempted[0].num_preemptions == 1
    assert s.autellix_counters.num_proactive_preemptions == 1
    finished = run_until_done(s)
    assert set(finished) == {r.request_id for r in low} | {urgent.request_id}
    assert all(len(s_) == 0 for s_ in [s.requests])


def test_stock_vllm_never_preempts_for_a_waiting_call(tiny_model_path):
    s = make_scheduler(tiny_model_path, None, max_num_seqs=2)
    low = [heavy(max_tokens=50, program=f"low{i}") for i in range(2)]
    for r in low:
        s.add_request(r)
    step(s)
    urgent = make_request(16, 4, program="fresh")
    s.add_request(urgent)
    out, _ = step(s)
    assert urgent.request_id not in out.num_scheduled_tokens
    assert all(r.status == RequestStatus.RUNNING for r in low)


def test_same_queue_never_preempts(tiny_model_path):
    s = make_scheduler(tiny_model_path, "plas", max_num_seqs=2, boundaries_s=BOUNDS, beta=None)
    first = [make_request(16, 50, program=f"a{i}") for i in range(2)]
    for r in first:
        s.add_request(r)
    step(s, step_s=0.01)
    s.add_request(make_request(16, 4, program="b"))
    step(s, step_s=0.01)
    assert s.autellix_counters.num_proactive_preemptions == 0


def test_preemptions_per_step_are_bounded(tiny_model_path):
    s = make_scheduler(
        tiny_model_path, "plas", max_num_seqs=4, boundaries_s=BOUNDS, beta=None, max_preemptions_per_step=1
    )
    for i in range(4):
        s.add_request(heavy(max_tokens=50, program=f"low{i}"))
    step(s)
    for i in range(3):
        s.add_request(make_request(16, 20, program=f"new{i}"))
    step(s)
    assert s.autellix_counters.num_proactive_preemptions == 1
    step(s)
    assert s.autellix_counters.num_proactive_preemptions == 2


def test_token_budget_full_also_triggers_preemption(tiny_model_path):
    s = make_scheduler(
        tiny_model_path, "plas", max_num_seqs=8, max_num_batched_tokens=256, boundaries_s=BOUNDS, beta=None
    )
    long_prefill = heavy(prompt_len=1000, max_tokens=4, program="long")
    s.add_request(long_prefill)
    step(s)  # takes the whole 256-token budget, 744 prompt tokens still to go
    urgent = make_request(16, 4, program="fresh")
    s.add_request(urgent)
    out, _ = step(s)
    assert s.autellix_counters.num_proactive_preemptions == 1
    assert out.num_scheduled_tokens[urgent.request_id] == 16
    # the victim resumed at once with what budget was left, from its cached prefix
    assert out.num_scheduled_tokens[long_prefill.request_id] == 256 - 16
    assert s.autellix_counters.num_recomputed_tokens == 0


def test_service_is_the_wall_time_of_scheduled_steps_and_reaches_the_output(tiny_model_path):
    s = make_scheduler(
        tiny_model_path, "plas", max_num_seqs=1, boundaries_s=(0.0, 10.0), beta=None, service_unit="wall"
    )
    a = make_request(16, 3, program="p", thread="t1")
    b = make_request(16, 3, program="p", thread="t2")
    s.add_request(a)
    s.add_request(b)
    finished = run_until_done(s, step_s=0.25)
    rep_a = finished[a.request_id].kv_transfer_params["autellix"]
    rep_b = finished[b.request_id].kv_transfer_params["autellix"]
    assert rep_a["service_s"] == pytest.approx(0.75)  # 3 steps of 0.25 s
    assert rep_a["program_id"] == "p" and rep_a["thread_id"] == "t1"
    assert rep_b["wait_s"] == pytest.approx(0.75)  # waited while a ran
    row = s.program_policy.table.get("p")
    assert row.service_s == pytest.approx(1.5) and row.wait_s == pytest.approx(0.75)


@pytest.mark.parametrize("step_s", [0.01, 2.0])
def test_work_service_counts_tokens_whatever_the_step_time(tiny_model_path, step_s):
    """The default unit: batch-1 work (16 prompt tokens, then 2 decode steps), not the step's wall time."""
    s = make_scheduler(tiny_model_path, "plas", max_num_seqs=2, boundaries_s=(0.0, 10.0), beta=None)
    service = s.autellix_settings.service
    assert service.unit == "work"
    a = make_request(16, 3, program="p")
    s.add_request(a)
    finished = run_until_done(s, step_s=step_s)
    report = finished[a.request_id].kv_transfer_params["autellix"]
    assert report["service_s"] == pytest.approx(16 * service.prefill_token_s + 2 * service.decode_token_s)
    assert report["wait_s"] == pytest.approx(0.0, abs=1e-9)  # always scheduled: no wait at any step time


def test_demotion_moves_a_long_call_below_a_new_one(tiny_model_path):
    s = make_scheduler(
        tiny_model_path, "mlfq", max_num_seqs=1, boundaries_s=BOUNDS, beta=None, service_unit="wall"
    )
    long = make_request(16, 100, program="long")
    s.add_request(long)
    for _ in range(3):
        step(s, step_s=0.25)  # 0.75 s > Q1's 0.5 s quantum
    assert s.program_policy.level(long.request_id) == 1
    short = make_request(16, 2, program="short")
    s.add_request(short)
    out, _ = step(s)
    assert list(out.num_scheduled_tokens) == [short.request_id]
    assert long.status == RequestStatus.PREEMPTED
    assert s.autellix_counters.num_demotions >= 1


def test_anti_starvation_promotes_a_starved_waiting_call(tiny_model_path):
    s = make_scheduler(
        tiny_model_path, "plas", max_num_seqs=1, boundaries_s=BOUNDS, beta=1.0, reevaluate_every_steps=1,
        service_unit="wall",  # the hog's wall-time service demotes it below the promoted call
    )
    starved = heavy(service=1.0, max_tokens=2, program="starved")  # Q3
    s.add_request(starved)
    s.add_request(make_request(16, 400, program="hog"))  # Q1 at first
    seen_starved = False
    for _ in range(30):
        out, _ = step(s, step_s=0.1)
        if starved.request_id in out.num_scheduled_tokens:
            seen_starved = True
            break
    assert seen_starved and s.autellix_counters.num_promotions >= 1


def test_recomputed_tokens_after_resume_are_counted(tiny_model_path):
    for caching, expect_small in ((True, True), (False, False)):
        s = make_scheduler(
            tiny_model_path, "plas", max_num_seqs=1, boundaries_s=BOUNDS, beta=None,
            enable_prefix_caching=caching,
        )
        victim = heavy(prompt_len=4 * BLOCK_SIZE, max_tokens=30, program="victim")
        s.add_request(victim)
        for _ in range(5):
            step(s)
        s.add_request(make_request(16, 2, program="urgent"))
        finished = run_until_done(s)
        report = finished[victim.request_id].kv_transfer_params["autellix"]
        assert report["num_preemptions"] == 1
        computed_at_preemption = 4 * BLOCK_SIZE + 4  # the 5th sampled token has no KV yet
        if expect_small:
            assert report["num_recomputed_tokens"] < BLOCK_SIZE
        else:
            assert report["num_recomputed_tokens"] == computed_at_preemption
        assert s.autellix_counters.num_resumed == 1


def test_abort_frees_the_call_and_reports_it(tiny_model_path):
    s = make_scheduler(tiny_model_path, "plas", max_num_seqs=1)
    running, waiting = make_request(16, 50, program="a"), make_request(16, 50, program="b")
    s.add_request(running)
    s.add_request(waiting)
    step(s)
    s.finish_requests([running.request_id, waiting.request_id], RequestStatus.FINISHED_ABORTED)
    assert len(s.program_policy) == 0 and not s.waiting and not s.running
    assert s.program_policy.table.get("a").idle and s.program_policy.table.get("b").idle


def test_atlas_siblings_share_a_priority_and_run_together(tiny_model_path):
    s = make_scheduler(tiny_model_path, "atlas", max_num_seqs=3, boundaries_s=BOUNDS, beta=None)
    # tree: a root call, then three sibling expansions; another program is busy meanwhile
    root = make_request(16, 2, program="tree", thread="root")
    s.add_request(root)
    run_until_done(s, step_s=0.3)
    other = [heavy(max_tokens=40, service=1.5, program=f"o{i}") for i in range(3)]  # Q3
    for r in other:
        s.add_request(r)
    step(s)
    kids = [make_request(16, 4, program="tree", thread=f"k{i}", parents=["root"]) for i in range(3)]
    for r in kids:
        s.add_request(r)
    out, _ = step(s)
    assert {r.request_id for r in kids} <= set(out.num_scheduled_tokens)
    prios = [s.program_policy.state(r.request_id).priority_s for r in kids]
    root_service = s.program_policy.table.get("tree").critical_path_s  # the root's work: Q1, above the others
    assert root_service > 0 and prios == [pytest.approx(root_service)] * 3
    assert s.autellix_counters.num_proactive_preemptions == 3


def test_fcfs_plugin_makes_the_same_decisions_as_stock_vllm(tiny_model_path):
    def trace(scheduler):
        arrivals = {0: 5, 3: 4, 6: 6, 9: 3}
        order = []
        for t in range(200):
            for k in range(arrivals.get(t, 0)):
                scheduler.add_request(
                    make_request(16 + 8 * k, 3 + 2 * k, program=f"p{t}", request_id=f"t{t}k{k}")
                )
            if not scheduler.requests and t > 9:
                break
            out, fin = step(scheduler, 0.05)
            order.append((dict(out.num_scheduled_tokens), sorted(fin)))
        return order

    stock = trace(make_scheduler(tiny_model_path, None, max_num_seqs=4, num_blocks=40))
    plugin = trace(make_scheduler(tiny_model_path, "fcfs", max_num_seqs=4, num_blocks=40))
    assert stock == plugin


def test_bad_settings_fail_at_engine_start(tiny_model_path):
    with pytest.raises(ValueError, match="unknown autellix setting"):
        make_scheduler(tiny_model_path, "plas", gamma=1)
    with pytest.raises(ValueError, match="valid: \\['atlas'"):
        make_scheduler(tiny_model_path, "lifo")


def test_report_carries_prefix_cache_hits_and_kv_usage(tiny_model_path):
    s = make_scheduler(tiny_model_path, "plas", max_num_seqs=2)
    shared = list(range(10, 10 + 3 * BLOCK_SIZE))
    first = make_request(prompt=shared + [1, 2], max_tokens=2, program="p")
    s.add_request(first)
    run_until_done(s)
    second = make_request(prompt=shared + [3, 4], max_tokens=2, program="p")
    s.add_request(second)
    report = run_until_done(s)[second.request_id].kv_transfer_params["autellix"]
    assert report["num_prompt_tokens"] == 3 * BLOCK_SIZE + 2
    assert report["num_cached_tokens"] == 3 * BLOCK_SIZE  # the shared full blocks
    assert 0.0 <= report["engine_kv_usage"] <= 1.0


def _two_low_calls_then_urgent(s, prompt_len=32, steps_before=2):
    low = [heavy(prompt_len=prompt_len, max_tokens=50, program=f"low{i}") for i in range(2)]
    for r in low:
        s.add_request(r)
    for _ in range(steps_before):
        step(s)
    urgent = make_request(16, 4, program="fresh")
    s.add_request(urgent)
    return low, urgent


def test_cost_bound_keeps_long_contexts_running(tiny_model_path):
    """A running call with more computed tokens than the bound is not preempted to admit a better one."""
    for bound, expect in ((64, 0), (None, 1)):
        s = make_scheduler(
            tiny_model_path, "plas", max_num_seqs=2, boundaries_s=BOUNDS, beta=None,
            preempt_max_victim_tokens=bound,
        )
        _, urgent = _two_low_calls_then_urgent(s, prompt_len=200)
        out, _ = step(s)
        assert s.autellix_counters.num_proactive_preemptions == expect
        assert (urgent.request_id in out.num_scheduled_tokens) == bool(expect)


def test_hysteresis_protects_calls_just_admitted(tiny_model_path):
    s = make_scheduler(
        tiny_model_path, "plas", max_num_seqs=2, boundaries_s=BOUNDS, beta=None, preempt_min_run_steps=4
    )
    _two_low_calls_then_urgent(s, steps_before=1)  # the low calls ran 1 step
    preempted_at = None
    for i in range(6):
        step(s)
        if s.autellix_counters.num_proactive_preemptions and preempted_at is None:
            preempted_at = i + 1  # steps the victims had run before this one preempted one
    assert preempted_at == 4


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"preempt_max_victim_tokens": -1}, "preempt_max_victim_tokens must be an integer >= 0"),
        ({"preempt_min_run_steps": 1.5}, "preempt_min_run_steps must be an integer >= 0"),
        ({"service_unit": "tokens"}, "service unit must be one of"),
        ({"order_within_queue": "lifo"}, "order_within_queue must be one of"),
    ],
)
def test_bad_plugin_settings_fail_at_start(tiny_model_path, settings, message):
    with pytest.raises(ValueError, match=message):
        make_scheduler(tiny_model_path, "plas", **settings)


def test_kv_holding_waiting_follows_the_policy_order(tiny_model_path):
    from autellix_ray.vllm.queue import PolicyOrderedQueue

    s = make_scheduler(tiny_model_path, "plas")
    assert isinstance(s.kv_holding_waiting, PolicyOrderedQueue) and isinstance(s.waiting, PolicyOrderedQueue)


def test_learned_gittins_order_reorders_the_waiting_calls(tiny_model_path):
    s = make_scheduler(tiny_model_path, "plas", max_num_seqs=1, boundaries_s=BOUNDS, beta=None,
                       queue_order="gittins", reevaluate_every_steps=1, max_preemptions_per_step=0)
    ranker = s.program_policy._ranker
    ranker.min_programs = ranker.refresh_every = 3
    for i in range(3):  # three programs of ~1.5 s of service each finish: Q2 is nearest to done
        s.add_request(heavy(max_tokens=2, service=1.5, program=f"done{i}"))
    run_until_done(s)
    s.add_request(heavy(max_tokens=40, service=1.5, program="hog"))
    step(s)
    old, new = heavy(max_tokens=2, service=1.2, program="old"), make_request(16, 2, program="new")
    s.add_request(new)
    s.add_request(old)
    assert [r.request_id for r in s.waiting] == [new.request_id, old.request_id]  # LAS so far
    first = None
    for _ in range(60):
        out, _ = step(s)
        first = first or next((r for r in out.num_scheduled_tokens if r in (old.request_id, new.request_id)), None)
    assert s.program_policy.ranks_version == 1  # learned once the finished programs stayed idle
    assert first == old.request_id
