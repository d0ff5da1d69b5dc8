"""CodeGemma prompt formats, built as token ids.

Control tokens come from the tokenizer by piece name; every piece of user text (code, paths,
messages) goes through :meth:`Tokenizer.encode`, which never turns text into a control token.
So a student's code that contains ``<end_of_turn>`` stays characters.

Formats (from the CodeGemma model card and report):
- fill-in-the-middle, prefix-suffix-middle:
  ``<bos><|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>``
- suffix-prefix-middle (trained alongside; layout as in Bavarian et al., "SPM"):
  ``<bos><|fim_prefix|><|fim_suffix|>{suffix}<|fim_middle|>{prefix}``
- multi-file context: each other file as ``<|file_separator|>{path}\\n{content}``, then the
  current file's FIM block, whose path follows its own separator;
- chat: ``<bos><start_of_turn>user\\n{text}<end_of_turn>\\n<start_of_turn>model\\n``...
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .engine.errors import PromptError
from .engine.tokenizer import (
    BOS,
    END_OF_TURN,
    EOS,
    FILE_SEPARATOR,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    SPECIAL_PIECES,
    START_OF_TURN,
    Tokenizer,
)

FimMode = Literal["psm", "spm"]


@dataclass(frozen=True)
class ContextFile:
    """Another file (or notebook cell) shown to the model before the one being completed."""

    path: str
    content: str


class Special(str):
    """A control piece in a prompt (``<|fim_prefix|>``...), as opposed to text."""


Segment = str  # plain text, or a Special


def fim_segments(prefix: str, suffix: str = "", *, mode: FimMode = "psm", files: Sequence[ContextFile] = (),
                 path: str | None = None) -> list[Segment]:
    """The fill-in-the-middle prompt as control pieces and text: the one place that knows its layout.

    With ``files`` (or a ``path``) the prompt is multi-file: the other files come first, each after
    a file separator, then the current file's path and its fill-in-the-middle block.
    """
    if mode == "psm":
        block = [Special(FIM_PREFIX), prefix, Special(FIM_SUFFIX), suffix, Special(FIM_MIDDLE)]
    elif mode == "spm":
        block = [Special(FIM_PREFIX), Special(FIM_SUFFIX), suffix, Special(FIM_MIDDLE), prefix]
    else:
        raise PromptError(f"unknown fill-in-the-middle mode {mode!r}: use 'psm' or 'spm'.")
    segments: list[Segment] = [Special(BOS)]
    if files or path is not None:
        for f in files:
            segments += file_segments(f.path, f.content)
        segments += file_segments(path or "", "")
    return segments + block


def file_segments(path: str, content: str) -> list[Segment]:
    """One file of a multi-file prompt: the separator, then the path on its own line, then the content."""
    return [Special(FILE_SEPARATOR), f"{path}\n{content}"]


def render_ids(tokenizer: Tokenizer, segments: Sequence[Segment]) -> list[int]:
    ids: list[int] = []
    for seg in segments:
        if isinstance(seg, Special):
            ids.append(tokenizer.special[seg])
        elif seg:
            ids += tokenizer.encode(seg)
    return ids


def render_text(segments: Sequence[Segment]) -> str:
    """The prompt as text for servers that take only text and parse special pieces in it.

    Such a server would also parse ``<end_of_turn>`` typed by a student, so each special-piece
    string inside text is broken with an invisible U+200C after its ``<``.
    """
    return "".join(str(seg) if isinstance(seg, Special) else neutralize(seg) for seg in segments)


_SPECIAL_TEXT = re.compile("|".join(re.escape(p) for p in sorted(SPECIAL_PIECES, key=len, reverse=True)))


def neutralize(text: str) -> str:
    """``text`` with every special-piece string broken so no tokenizer can read it as control."""
    return _SPECIAL_TEXT.sub(lambda m: "<\u200c" + m.group()[1:], text)


def fim_prompt(tokenizer: Tokenizer, prefix: str, suffix: str = "", *, mode: FimMode = "psm",
               files: Sequence[ContextFile] = (), path: str | None = None) -> list[int]:
    """Token ids asking the model to write the middle between ``prefix`` and ``suffix``."""
    return render_ids(tokenizer, fim_segments(prefix, suffix, mode=mode, files=files, path=path))


def fim_stop_ids(tokenizer: Tokenizer) -> list[int]:
    """Tokens that end a completion: <eos>, any FIM marker, a file separator, <end_of_turn>."""
    return [tokenizer.special[p] for p in (EOS, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR, END_OF_TURN)]


_ROLES = {"user": "user", "assistant": "model", "model": "model"}


def chat_prompt(tokenizer: Tokenizer, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """Token ids of a conversation for the instruction-tuned model, ending where its reply starts.

    ``messages`` are ``{"role": "system"|"user"|"assistant", "content": text}``. Gemma has no
    system role, so system text is folded into the first user turn. Turns must alternate,
    starting and ending with the user.
    """
    system = [m["content"] for m in messages if m.get("role") == "system"]
    turns = [m for m in messages if m.get("role") != "system"]
    for m in turns:
        if m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
            raise PromptError(
                f"each message needs a role (system, user or assistant) and text content; got {dict(m)!r}"
            )
    roles = [_ROLES[m["role"]] for m in turns]
    alternating = all(a != b for a, b in zip(roles, roles[1:], strict=False))
    if not roles or roles[0] != "user" or roles[-1] != "user" or not alternating:
        raise PromptError(
            "messages must alternate user/assistant, starting and ending with a user message; "
            f"got {[m['role'] for m in turns]}"
        )
    sp = tokenizer.special
    ids = [sp[BOS]]
    for i, (role, m) in enumerate(zip(roles, turns, strict=True)):
        text = m["content"]
        if i == 0 and system:
            text = "\n\n".join([*system, text])
        ids += [sp[START_OF_TURN], *tokenizer.encode(f"{role}\n{text}"), sp[END_OF_TURN],
                *tokenizer.encode("\n")]
    return ids + [sp[START_OF_TURN], *tokenizer.encode("model\n")]


def chat_stop_ids(tokenizer: Tokenizer) -> list[int]:
    return [tokenizer.special[END_OF_TURN], tokenizer.special[EOS]]
