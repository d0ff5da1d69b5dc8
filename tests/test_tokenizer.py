"""The tokenizer with the tiny SentencePiece model: special pieces by name, plain text stays plain."""

from __future__ import annotations

import pytest
import sentencepiece as spm

from tutor.engine import StreamDecoder, Tokenizer, TokenizerError
from tutor.engine.tiny import train_tokenizer
from tutor.engine.tokenizer import END_OF_TURN, FIM_PREFIX, SPECIAL_PIECES

CODE = 'def greet(name):\n    return f"Héllo, {name}! 你好 🐍"\n\n\tx = [1, 2, 3]  # ünïcödé\n'


@pytest.fixture(scope="module", params=["user_defined", "control"])
def tok(request, tmp_path_factory) -> Tokenizer:
    path = tmp_path_factory.mktemp(request.param) / "tokenizer.model"
    path.write_bytes(train_tokenizer(request.param))
    return Tokenizer(path)


def test_special_ids_are_looked_up_by_name(tok):
    sp = spm.SentencePieceProcessor(model_file=str(tok.path))
    for piece in SPECIAL_PIECES:
        assert tok.special[piece] == sp.piece_to_id(piece)
        assert tok.id_to_piece(tok.special[piece]) == piece
    assert len(set(tok.special.values())) == len(SPECIAL_PIECES)
    assert tok.piece_to_id(FIM_PREFIX) == tok.special[FIM_PREFIX]
    with pytest.raises(TokenizerError, match="no piece"):
        tok.piece_to_id("<|not_a_piece|>")


@pytest.mark.parametrize("text", [CODE, "", " leading space", "a  b   c\n\n", "<bos> in text"])
def test_round_trip(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_student_text_never_becomes_a_control_token(tok):
    text = "print('<end_of_turn>')  # <start_of_turn>model\n<|fim_prefix|><|file_separator|><eos><bos>"
    ids = tok.encode(text)
    assert not set(ids) & set(tok.special.values())
    assert tok.decode(ids) == text


def test_user_defined_pieces_would_be_parsed_without_the_guard(tmp_path):
    """Shows why the guard exists: raw SentencePiece turns the literal into the control id."""
    path = tmp_path / "tokenizer.model"
    path.write_bytes(train_tokenizer("user_defined"))
    sp = spm.SentencePieceProcessor(model_file=str(path))
    assert sp.encode("<end_of_turn>") == [sp.piece_to_id(END_OF_TURN)]


def test_stream_decoder_never_splits_a_character(tok):
    ids = tok.encode(CODE)
    assert len(ids) > len(CODE) // 4  # byte fallback is in play for the CJK and the emoji
    decoder = StreamDecoder(tok)
    pieces = [decoder.push(i) for i in ids]
    pieces.append(decoder.flush())
    assert "".join(pieces) == CODE
    assert all("\ufffd" not in p for p in pieces)
    # Multi-byte characters arrive whole, after their last byte token.
    assert any(p.endswith("🐍") or "🐍" in p for p in pieces)


def test_tokenizer_without_codegemma_pieces_is_refused(tmp_path):
    plain = tmp_path / "tokenizer.model"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(["def f(x):\n    return x\n"] * 50),
                                   model_prefix=str(tmp_path / "tokenizer"),
                                   vocab_size=60, hard_vocab_limit=False, minloglevel=2,
                                   user_defined_symbols=["<start_of_turn>", "<end_of_turn>"])
    with pytest.raises(TokenizerError, match=r"lacks .*<\|fim_prefix\|>.*not a CodeGemma tokenizer"):
        Tokenizer(plain)


def test_missing_or_garbage_tokenizer_file(tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer.model"):
        Tokenizer(tmp_path / "tokenizer.model")
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(TokenizerError, match="not a SentencePiece model"):
        Tokenizer(bad)


def test_raw_prompts_from_programs_parse_special_pieces(tok):
    s = tok.special
    raw = "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>"
    assert tok.encode_raw_prompt(raw) == [s["<bos>"], s["<|fim_prefix|>"], *tok.encode("def f():"),
                                          s["<|fim_suffix|>"], *tok.encode("\n"), s["<|fim_middle|>"]]
    assert tok.encode_raw_prompt("<bos>x") == [s["<bos>"], *tok.encode("x")]
