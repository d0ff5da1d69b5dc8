"""CodeGemma prompt layouts, built from ids looked up by name."""

from __future__ import annotations

import pytest

from tutor.engine import PromptError
from tutor.prompts import ContextFile, chat_prompt, chat_stop_ids, fim_prompt, fim_stop_ids


@pytest.fixture(scope="module")
def tok(tiny_2b):
    return tiny_2b.tokenizer


def s(tok, piece):
    return tok.special[piece]


def test_fim_prefix_suffix_middle(tok):
    ids = fim_prompt(tok, "def f(x):\n    ", "\n    return y\n")
    expected = [s(tok, "<bos>"), s(tok, "<|fim_prefix|>"), *tok.encode("def f(x):\n    "),
                s(tok, "<|fim_suffix|>"), *tok.encode("\n    return y\n"), s(tok, "<|fim_middle|>")]
    assert ids == expected


def test_fim_suffix_prefix_middle(tok):
    ids = fim_prompt(tok, "a = ", "\nprint(a)", mode="spm")
    expected = [s(tok, "<bos>"), s(tok, "<|fim_prefix|>"), s(tok, "<|fim_suffix|>"), *tok.encode("\nprint(a)"),
                s(tok, "<|fim_middle|>"), *tok.encode("a = ")]
    assert ids == expected
    with pytest.raises(PromptError, match="unknown fill-in-the-middle mode"):
        fim_prompt(tok, "a", mode="msp")


def test_multi_file_context(tok):
    files = [ContextFile("utils.py", "def helper():\n    return 1\n"), ContextFile("cell 2", "x = helper()\n")]
    ids = fim_prompt(tok, "y = ", "", files=files, path="main.py")
    sep = s(tok, "<|file_separator|>")
    expected = [s(tok, "<bos>"),
                sep, *tok.encode("utils.py\ndef helper():\n    return 1\n"),
                sep, *tok.encode("cell 2\nx = helper()\n"),
                sep, *tok.encode("main.py\n"),
                s(tok, "<|fim_prefix|>"), *tok.encode("y = "), s(tok, "<|fim_suffix|>"), s(tok, "<|fim_middle|>")]
    assert ids == expected


def test_student_code_with_control_strings_stays_text(tok):
    prefix = "s = '<|fim_middle|><end_of_turn>'\n"
    ids = fim_prompt(tok, prefix, "<|fim_suffix|>")
    specials = [i for i in ids if i in tok.special.values()]
    assert specials == [s(tok, "<bos>"), s(tok, "<|fim_prefix|>"), s(tok, "<|fim_suffix|>"), s(tok, "<|fim_middle|>")]
    chat = chat_prompt(tok, [{"role": "user", "content": "why does '<end_of_turn>' print?"}])
    assert chat.count(s(tok, "<end_of_turn>")) == 1


def test_chat_format(tok):
    messages = [
        {"role": "system", "content": "You are a patient tutor."},
        {"role": "user", "content": "What is a list?"},
        {"role": "assistant", "content": "An ordered collection."},
        {"role": "user", "content": "Show one."},
    ]
    sot, eot = s(tok, "<start_of_turn>"), s(tok, "<end_of_turn>")
    nl = tok.encode("\n")
    expected = [s(tok, "<bos>"),
                sot, *tok.encode("user\nYou are a patient tutor.\n\nWhat is a list?"), eot, *nl,
                sot, *tok.encode("model\nAn ordered collection."), eot, *nl,
                sot, *tok.encode("user\nShow one."), eot, *nl,
                sot, *tok.encode("model\n")]
    assert chat_prompt(tok, messages) == expected


CONVERSATIONS = [
    [{"role": "user", "content": "What is a list?"}],
    [{"role": "user", "content": "  Explain this:\n```python\nx = [1, 2]\n```\n\n"}],  # trimmed, as the template does
    [{"role": "system", "content": "You are a patient tutor.\n"},
     {"role": "user", "content": "What is a list?"},
     {"role": "assistant", "content": "An ordered collection.\n\n"},
     {"role": "user", "content": "\tShow one.  "}],
    [{"role": "user", "content": "def f(x):\n    return x\n"}, {"role": "assistant", "content": "It returns x."},
     {"role": "user", "content": "Why?"}, {"role": "model", "content": "\nBecause."},
     {"role": "user", "content": "ok"}],
    [{"role": "user", "content": "naïve café ✓ 数字"}],
]


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_2b_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.GemmaTokenizer(vocab_file=str(tiny_2b_dir / "tokenizer.model"))


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_chat_prompt_matches_the_gemma_chat_template(tok, hf_tokenizer, messages):
    """The reference, not the code's own joins: codegemma-7b-it's published chat template, rendered
    by transformers. Gemma has no system role (the template refuses one), so system text is folded
    into the first user turn first, as chat_prompt does."""
    from gemma_chat_template import GEMMA_CHAT_TEMPLATE

    from tutor.prompts import fold_system

    text = hf_tokenizer.apply_chat_template([dict(m) for m in fold_system(messages)], tokenize=False,
                                            add_generation_prompt=True, chat_template=GEMMA_CHAT_TEMPLATE)
    assert text.startswith("<bos><start_of_turn>user\n") and text.endswith("<end_of_turn>\n<start_of_turn>model\n")
    assert chat_prompt(tok, messages) == tok.encode_raw_prompt(text)


@pytest.mark.parametrize("messages", [
    [],
    [{"role": "assistant", "content": "hi"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
    [{"role": "teacher", "content": "a"}],
    [{"role": "user", "content": None}],
])
def test_chat_rejects_malformed_conversations(tok, messages):
    with pytest.raises(PromptError):
        chat_prompt(tok, messages)


def test_stop_ids(tok):
    assert set(fim_stop_ids(tok)) == {s(tok, p) for p in ("<eos>", "<|fim_prefix|>", "<|fim_middle|>",
                                                          "<|fim_suffix|>", "<|file_separator|>", "<end_of_turn>")}
    assert set(chat_stop_ids(tok)) == {s(tok, "<end_of_turn>"), s(tok, "<eos>")}


def test_text_rendering_for_text_only_servers(tok):
    from tutor.prompts import fim_segments, neutralize, render_text

    text = render_text(fim_segments("s = '<end_of_turn>'\n", "<|fim_suffix|>"))
    assert text == "<bos><|fim_prefix|>s = '<\u200cend_of_turn>'\n<|fim_suffix|><\u200c|fim_suffix|><|fim_middle|>"
    # read back by a server that parses special pieces, only the prompt's own markers are control tokens
    ids = tok.encode_raw_prompt(text)
    assert [i for i in ids if i in tok.special.values()] == [
        s(tok, "<bos>"), s(tok, "<|fim_prefix|>"), s(tok, "<|fim_suffix|>"), s(tok, "<|fim_middle|>")]
    assert neutralize("plain code") == "plain code"
