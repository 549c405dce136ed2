"""What ``make demo`` prints: engine ids from the call reports, and library logs kept out of the terminal."""

import logging
from types import SimpleNamespace

from openai.types import Completion

from autellix_ray.bench.demo import _logs_to_file, engine_of, engines_cell


def _completion(params):
    body = {"id": "c", "object": "text_completion", "created": 0, "model": "tiny",
            "choices": [{"index": 0, "text": "x", "finish_reason": "length", "logprobs": None}]}
    if params is not None:
        body["kv_transfer_params"] = params
    return Completion.model_validate(body)


def test_engine_of_reads_the_report_over_http_and_handles():
    # over HTTP the openai client keeps vLLM's extra field in model_extra
    assert engine_of(_completion({"autellix": {"engine_id": "k3j2x9ab", "num_preemptions": 0}})) == "k3j2x9ab"
    assert engine_of(_completion(None)) is None
    assert engine_of(_completion({"other": 1})) is None

    # vLLM's CompletionResponse (the handle path) has the field itself
    assert engine_of(SimpleNamespace(kv_transfer_params={"autellix": {"engine_id": "zz99yy88"}})) == "zz99yy88"


def test_engines_cell_counts_calls_per_short_engine_id():
    assert engines_cell(["abcdef123", "abcdef123", "zyxwvu987"]) == "abcdef x2, zyxwvu x1"
    assert engines_cell(["abcdef123", None]) == "abcdef x1, ? x1"
    assert engines_cell([]) == "-"


def test_library_logs_go_to_the_file_not_the_terminal(tmp_path, capsys):
    saved = logging.root.handlers[:], logging.root.level
    noisy = logging.getLogger("httpx")
    noisy.addHandler(logging.StreamHandler())  # as a library's own handler would
    try:
        path = tmp_path / "demo.log"
        _logs_to_file(str(path))
        noisy.info('HTTP Request: POST http://127.0.0.1:8000/v1/completions "HTTP/1.1 200 OK"')
        logging.getLogger("ray.serve").warning("replica started")
        _logs_to_file(str(path))  # calling again (after Ray starts) keeps one file handler
        assert len(logging.root.handlers) == 1
        captured = capsys.readouterr()
        assert "HTTP Request" not in captured.err + captured.out
        text = path.read_text()
        assert "HTTP Request: POST" in text and "replica started" in text
    finally:
        logging.root.handlers[:] = saved[0]
        logging.root.setLevel(saved[1])
        logging.captureWarnings(False)


def test_stderr_to_moves_fd_writes_into_the_log_and_back(tmp_path, capfd):
    import os

    from autellix_ray.bench.demo import _stderr_to

    path = tmp_path / "demo.log"
    with _stderr_to(str(path), fds=(1, 2)):
        os.write(2, b"(raylet) shutdown noise\n")  # as Ray's C++ parts write, below Python
        os.write(1, b"more noise\n")
    os.write(2, b"after\n")
    captured = capfd.readouterr()
    assert "noise" not in captured.err + captured.out and "after" in captured.err
    assert path.read_text() == "(raylet) shutdown noise\nmore noise\n"
