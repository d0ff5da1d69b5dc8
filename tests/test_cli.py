"""The `tutor` command line, run as a user would: a separate process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def tutor(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tutor.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_make_tiny_then_complete_and_chat(tmp_path):
    folder = tmp_path / "it"
    made = tutor("make-tiny", str(folder), "--variant", "7b-it", "--shards", "2")
    assert made.returncode == 0, made.stderr
    assert (folder / "model.safetensors.index.json").is_file()
    assert {p.name for p in folder.iterdir()} >= {"config.json", "tokenizer.model", "generation_config.json"}

    done = tutor("complete", "--model", str(folder), "--prefix", "def add(a, b):\n    ", "--suffix", "\n",
                 "--max-new-tokens", "12", "--dtype", "float32")
    assert done.returncode == 0, done.stderr
    assert "instruction-tuned" in done.stderr  # pointed at the better model for completion

    from tutor.engine import load
    from tutor.prompts import fim_prompt, fim_stop_ids

    model = load(folder, device="cpu", dtype="float32")
    expected = model.generate(fim_prompt(model.tokenizer, "def add(a, b):\n    ", "\n"), max_new_tokens=12,
                              stop_token_ids=fim_stop_ids(model.tokenizer)).text
    assert done.stdout == expected

    chat = tutor("chat", "--model", str(folder), "What does print do?", "--max-new-tokens", "6")
    assert chat.returncode == 0, chat.stderr
    assert "not instruction-tuned" not in chat.stderr


def test_prefix_and_suffix_files(tmp_path, tiny_2b_dir, tiny_2b):
    """README's `--prefix-file before.py --suffix-file after.py`: the completion is the model's fill
    between the two files' texts, exactly."""
    from tutor.prompts import fim_prompt, fim_stop_ids

    prefix, suffix = "import math\n\ndef area(r):\n    return ", "\n\nprint(area(2.0))\nassert area(1) > 3\n"
    (tmp_path / "before.py").write_text(prefix)
    (tmp_path / "after.py").write_text(suffix)

    def expected(suffix: str) -> str:
        ids = fim_prompt(tiny_2b.tokenizer, prefix, suffix)
        return tiny_2b.generate(ids, max_new_tokens=12, stop_token_ids=fim_stop_ids(tiny_2b.tokenizer)).text

    assert expected(suffix) != expected(""), "pick a suffix that changes the tiny model's fill"
    done = tutor("complete", "--model", str(tiny_2b_dir), "--prefix-file", str(tmp_path / "before.py"),
                 "--suffix-file", str(tmp_path / "after.py"), "--max-new-tokens", "12", "--dtype", "float32")
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected(suffix)


def test_quantize_option_and_variable(tiny_2b_dir):
    done = tutor("complete", "--model", str(tiny_2b_dir), "--prefix", "x = ", "--max-new-tokens", "4",
                 "--quantize", "int8")
    assert done.returncode == 0, done.stderr
    bad = subprocess.run([sys.executable, "-m", "tutor.cli", "complete", "--model", str(tiny_2b_dir), "--prefix", "x"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "TUTOR_QUANTIZE": "int4"})
    assert bad.returncode == 2
    assert bad.stderr == "tutor: error: unknown TUTOR_QUANTIZE value 'int4': use one of int8, none.\n"


@pytest.mark.parametrize("args,message", [
    (["complete", "--model", "{missing}", "--prefix", "x"], "no such folder"),
    (["complete", "--model", "{tiny}", "--prefix-file", "{missing}"], "cannot read the prefix file"),
    (["chat", "--model", "{tiny}", "  "], "the question is empty"),
    (["complete", "--model", "{tiny}", "--prefix", "x = 1\n" * 3000], "context is 2048"),
    (["make-tiny", "{tiny}"], "already exists and is not empty"),
])
def test_errors_are_one_line_with_status_2(tmp_path, tiny_2b_dir, args, message):
    args = [a.format(missing=tmp_path / "missing", tiny=tiny_2b_dir) for a in args]
    done = tutor(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("tutor: error: ")
    assert message in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_pickle_checkpoint_refused_on_the_command_line(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gemma", "architectures": ["GemmaForCausalLM"], '
                                        '"vocab_size": 10, "hidden_size": 8, "intermediate_size": 8, '
                                        '"num_hidden_layers": 1, "num_attention_heads": 1, "head_dim": 8}')
    (folder / "tokenizer.model").write_bytes(b"")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    done = tutor("complete", "--model", str(folder), "--prefix", "x")
    assert done.returncode == 2
    assert "pickle checkpoints are refused" in done.stderr


def test_a_missing_dependency_is_one_line_naming_it(tmp_path):
    # numpy hidden after torch has loaded: what `tutor make-tiny` met in an install without numpy
    code = ("import sys, torch; sys.modules['numpy'] = None; from tutor.cli import main; "
            f"sys.exit(main(['make-tiny', {str(tmp_path / 'tiny')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "tutor: error: the Python module 'numpy' is not installed" in result.stderr
    assert "pip install numpy" in result.stderr
