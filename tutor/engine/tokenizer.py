"""The CodeGemma SentencePiece tokenizer, with special tokens looked up by piece name.

Two rules keep prompts safe:
- special ids are never hard-coded: ``tokenizer.special["<|fim_prefix|>"]`` is read from the model;
- user text is always plain text. SentencePiece matches user-defined pieces anywhere in the input,
  so a student's code containing ``<end_of_turn>`` could otherwise become the real control token.
  :meth:`Tokenizer.encode` splits such literals so they stay characters.
"""

from __future__ import annotations

import re
from pathlib import Path

import sentencepiece as spm

from .errors import TokenizerError

FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
FILE_SEPARATOR = "<|file_separator|>"
START_OF_TURN = "<start_of_turn>"
END_OF_TURN = "<end_of_turn>"
PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"

SPECIAL_PIECES = (PAD, EOS, BOS, UNK, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR,
                  START_OF_TURN, END_OF_TURN)


class Tokenizer:
    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise TokenizerError(
                f"{path}: no tokenizer.model in the model folder. Copy tokenizer.model from the "
                "CodeGemma release into this folder."
            )
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.Load(str(path))
        except (OSError, RuntimeError) as exc:
            raise TokenizerError(f"{path}: not a SentencePiece model ({exc}); re-download tokenizer.model.") from exc
        self.path = path
        missing = [p for p in SPECIAL_PIECES if not self._has_piece(p)]
        if missing:
            raise TokenizerError(
                f"{path}: the tokenizer lacks {', '.join(missing)}, so it is not a CodeGemma "
                "tokenizer (plain Gemma has no fill-in-the-middle pieces). Use the tokenizer.model "
                "that ships with codegemma-2b/7b/7b-it."
            )
        self.special: dict[str, int] = {p: self._sp.PieceToId(p) for p in SPECIAL_PIECES}
        # Pieces SentencePiece would match inside plain text; in the released model some of the
        # special pieces may be user-defined, so treat every special piece as a literal to break.
        literals = sorted((p for p in SPECIAL_PIECES), key=len, reverse=True)
        self._literal_re = re.compile("|".join(re.escape(p) for p in literals))

    def _has_piece(self, piece: str) -> bool:
        pid = self._sp.PieceToId(piece)
        return self._sp.IdToPiece(pid) == piece

    @property
    def vocab_size(self) -> int:
        return self._sp.GetPieceSize()

    @property
    def bos_id(self) -> int:
        return self.special[BOS]

    @property
    def eos_id(self) -> int:
        return self.special[EOS]

    @property
    def pad_id(self) -> int:
        return self.special[PAD]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as plain characters; no BOS is added, no special token is parsed."""
        return self._encode(text, specials=False)

    def encode_raw_prompt(self, text: str) -> list[int]:
        """Token ids of a complete raw prompt written by a program, not a person.

        Special-piece strings (``<|fim_prefix|>``, ``<start_of_turn>``...) become their tokens, and
        <bos> is put first unless the text starts with it, as OpenAI-compatible servers (vLLM,
        llama.cpp) treat text prompts. Never use this on text a student typed: use :meth:`encode`.
        """
        ids = self._encode(text, specials=True)
        return ids if ids[:1] == [self.bos_id] else [self.bos_id, *ids]

    def _encode(self, text: str, specials: bool) -> list[int]:
        ids: list[int] = []
        start = 0
        for match in self._literal_re.finditer(text):
            ids += self._sp.EncodeAsIds(text[start:match.start()]) if match.start() > start else []
            literal = match.group()
            if specials:
                ids.append(self.special[literal])
            else:  # encoding the first character apart means the whole piece can never match
                ids += self._sp.EncodeAsIds(literal[0]) + self._sp.EncodeAsIds(literal[1:])
            start = match.end()
        if start < len(text):
            ids += self._sp.EncodeAsIds(text[start:])
        return ids

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``; control tokens (<bos>, <eos>, ...) decode to nothing.

        Ids past the tokenizer's pieces (a model may have more embedding rows than pieces) decode
        to nothing too, rather than failing in the middle of a stream.
        """
        size = self._sp.GetPieceSize()
        return self._sp.DecodeIds([int(i) for i in ids if 0 <= int(i) < size])

    def id_to_piece(self, token_id: int) -> str:
        return self._sp.IdToPiece(int(token_id))

    def piece_to_id(self, piece: str) -> int:
        """Id of ``piece``; raises TokenizerError when the tokenizer has no such piece."""
        if not self._has_piece(piece):
            raise TokenizerError(f"{self.path}: the tokenizer has no piece {piece!r}.")
        return self._sp.PieceToId(piece)


class StreamDecoder:
    """Turns token ids into text pieces one token at a time, never splitting a character.

    Byte-fallback tokens carry one UTF-8 byte each; until a character is complete the decoded
    text ends in U+FFFD, so that tail is held back. Decoding uses a short window of recent tokens,
    not the whole output, so each step costs the same however long the reply grows.
    """

    def __init__(self, tokenizer: Tokenizer):
        self._tok = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # start of the decoding window
        self._read = 0  # tokens before this index have been emitted

    def push(self, token_id: int) -> str:
        self._ids.append(int(token_id))
        before = self._tok.decode(self._ids[self._prefix:self._read])
        now = self._tok.decode(self._ids[self._prefix:])
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return now[len(before):]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character decodes as U+FFFD)."""
        before = self._tok.decode(self._ids[self._prefix:self._read])
        now = self._tok.decode(self._ids[self._prefix:])
        self._prefix = self._read = len(self._ids)
        return now[len(before):]
