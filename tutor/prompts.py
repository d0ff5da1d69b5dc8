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
from collections.abc import Callable, Mapping, Sequence
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
    turns = fold_system(messages)
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
    for role, m in zip(roles, turns, strict=True):
        # Each turn's text is stripped, as Gemma's own chat template does (`content | trim`): the
        # model was tuned on turns without leading or trailing whitespace.
        ids += [sp[START_OF_TURN], *tokenizer.encode(f"{role}\n{m['content'].strip()}"), sp[END_OF_TURN],
                *tokenizer.encode("\n")]
    return ids + [sp[START_OF_TURN], *tokenizer.encode("model\n")]


def fold_system(messages: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """The messages with every system message's text put in front of the first user turn's (Gemma
    has no system role; its own chat templates do the same), separated by blank lines."""
    system = [m["content"] for m in messages if m.get("role") == "system"]
    turns: list[Mapping[str, str]] = [m for m in messages if m.get("role") != "system"]
    if system and turns and isinstance(turns[0].get("content"), str):
        turns[0] = {**turns[0], "content": "\n\n".join([*system, turns[0]["content"]])}
    return turns


def chat_stop_ids(tokenizer: Tokenizer) -> list[int]:
    return [tokenizer.special[END_OF_TURN], tokenizer.special[EOS]]


@dataclass(frozen=True)
class FimContext:
    """What fits a token budget: the text around the cursor and the context files, in their order."""

    prefix: str
    suffix: str
    files: tuple[ContextFile, ...]


def approximate_tokens(text: str) -> int:
    """A token count without a tokenizer (a remote model): about 3 characters per token for code."""
    return (len(text) + 2) // 3


def fit_fim_budget(count: Callable[[str], int], prefix: str, suffix: str, files: Sequence[ContextFile] = (),
                   *, budget: int, near: int | None = None, suffix_share: float = 0.25, per_file: int = 1
                   ) -> FimContext:
    """Trim a fill-in-the-middle prompt's text to about ``budget`` tokens, keeping what is near the cursor.

    The text right before the cursor matters most, then the text right after it, then the context
    files nearest to the current one. ``count`` counts the tokens of a text (``len(tokenizer.encode(t))``
    or :func:`approximate_tokens`). The suffix gets at most ``suffix_share`` of the budget unless the
    prefix leaves more; the prefix keeps its last lines and the suffix its first ones, cut at line
    boundaries (the cursor's own line is cut by characters only when it alone is over budget).
    ``files`` are in document order and ``near`` is the index where the current file sits among them
    (default: after them all); files are kept by distance from it, and dropped, never cut, when they
    do not fit; each costs its path and content plus ``per_file`` (its separator). Returns the pieces
    that fit, files still in their order.
    """
    budget = max(budget, 1)
    suffix_cap = int(budget * suffix_share)
    kept_suffix, used_suffix = _keep_lines(count, suffix, suffix_cap, from_end=False)
    kept_prefix, used_prefix = _keep_lines(count, prefix, budget - used_suffix, from_end=True)
    if kept_prefix == prefix and kept_suffix != suffix:  # the prefix left room: give it to the suffix
        kept_suffix, used_suffix = _keep_lines(count, suffix, budget - used_prefix, from_end=False)
    left = budget - used_prefix - used_suffix
    near = len(files) if near is None else near
    order = sorted(range(len(files)), key=lambda i: (abs(i - near + 0.5), i))
    keep = set()
    for i in order:
        cost = count(f"{files[i].path}\n{files[i].content}" if files[i].path else files[i].content) + per_file
        if cost <= left:
            keep.add(i)
            left -= cost
    return FimContext(kept_prefix, kept_suffix, tuple(f for i, f in enumerate(files) if i in keep))


def _keep_lines(count: Callable[[str], int], text: str, budget: int, *, from_end: bool) -> tuple[str, int]:
    """The lines of ``text`` nearest to the cursor (its end, or its start) that fit ``budget``; and their cost."""
    if not text or budget <= 0:
        return "", 0
    if count(text) <= budget:
        return text, count(text)
    lines = text.splitlines(keepends=True)
    if from_end:
        lines.reverse()
    kept: list[str] = []
    used = 0
    for line in lines:
        cost = count(line)
        if used + cost > budget:
            if not kept:  # the cursor's own line alone is too long: keep the characters nearest the cursor
                chars = max(1, len(line) * budget // max(cost, 1))
                piece = line[-chars:] if from_end else line[:chars]
                return piece, count(piece)
            break
        kept.append(line)
        used += cost
    if from_end:
        kept.reverse()
    return "".join(kept), used
