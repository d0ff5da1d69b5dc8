"""What a request body may be, checked before anything is tokenized or queued.

A body that passes here holds only what the engine can take: text that is valid Unicode (a lone
surrogate such as ``"\\ud800"`` cannot be encoded to UTF-8, so it would fail deep in the tokenizer),
roles the chat template knows, integers in the ranges torch and the tokenizer accept, and nesting a
few levels deep. Everything else is a 400 whose ``param`` names the field, so no request can reach
a scheduler, hold its queue slot, and then fail where nobody answers it.

The shapes are JSON Schema (the jsonschema package, which jupyter_server's events use too); two
checks JSON Schema cannot say (valid Unicode, bounded depth) run first, over the parsed tree.
Unknown fields are allowed, as OpenAI's clients send many (frequency_penalty, logit_bias...), but
they are walked by the same two checks.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance

from ..backends.base import MAX_DRAFT_TOKENS

MAX_BODY_BYTES = 4 << 20  # a 32k-token prompt as text is ~150 KB; the grader's code limit fits too
MAX_DEPTH = 32  # a chat with content parts is 5 levels deep
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit seed
MAX_TOKEN_ID = 2**31 - 1  # the model checks ids against its vocabulary; this keeps them machine integers


class RequestSchemaError(ValueError):
    """A body that is not what the endpoint takes; ``param`` names the field (``None``: the whole body)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_INT = {"type": "integer"}
_TOKEN_IDS = {"type": "array", "items": {**_INT, "minimum": 0, "maximum": MAX_TOKEN_ID}, "minItems": 1}
_OPTIONS = {
    "model": {"type": "string", "maxLength": 1000},
    "stream": _nullable({"type": "boolean"}),
    "stream_options": _nullable({"type": "object"}),
    "user": {"type": "string", "maxLength": 1000},
    "max_tokens": _nullable({**_INT, "minimum": 1, "maximum": MAX_TOKEN_ID}),
    "max_completion_tokens": _nullable({**_INT, "minimum": 1, "maximum": MAX_TOKEN_ID}),
    "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
    "top_p": _nullable({"type": "number", "exclusiveMinimum": 0, "maximum": 1}),
    "stop": _nullable({"anyOf": [{"type": "string"},
                                 {"type": "array", "items": {"type": "string"}, "maxItems": 4}]}),
    "seed": _nullable({**_INT, "minimum": 0, "maximum": MAX_SEED}),
    "n": _nullable(_INT),
    "draft_tokens": {**_INT, "minimum": 0, "maximum": MAX_DRAFT_TOKENS},
}
COMPLETIONS = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        **_OPTIONS,
        "prompt": {"anyOf": [
            {"type": "string", "minLength": 1},
            _TOKEN_IDS,
            {"type": "array", "minItems": 1, "maxItems": 1,  # a batch of one
             "items": {"anyOf": [{"type": "string", "minLength": 1}, _TOKEN_IDS]}},
        ]},
        "stop_token_ids": _nullable({**_TOKEN_IDS, "minItems": 0, "maxItems": 64}),
        "session": _nullable({"type": "string", "minLength": 1, "maxLength": 200}),
    },
}
CHAT = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        **_OPTIONS,
        "messages": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {
            "type": "object",
            "required": ["role", "content"],
            "properties": {
                "role": {"enum": ["system", "user", "assistant", "model"]},
                "content": {"anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "object", "required": ["type"],
                                                "properties": {"type": {"type": "string"},
                                                               "text": {"type": "string"}}}},
                ]},
                "name": {"type": "string"},
            },
        }},
    },
}

# What each field must be, in words, for the error message (keyed by the path, indices as [*]).
MUST = {
    "prompt": "must be a non-empty string or a list of token ids (one prompt per request)",
    "messages": "must be a non-empty list of {role, content} objects",
    "messages[*]": "must be a {role, content} object",
    "messages[*].role": "must be one of system, user, assistant",
    "messages[*].content": "must be text, or a list of {\"type\": \"text\", \"text\": ...} parts",
    "messages[*].content[*]": "must be a {\"type\": \"text\", \"text\": ...} part",
    "messages[*].content[*].text": "must be text",
    "seed": f"must be an integer from 0 to 2**63-1 ({MAX_SEED})",
    "max_tokens": "must be a positive integer",
    "max_completion_tokens": "must be a positive integer",
    "temperature": "must be a number from 0 to 2",
    "top_p": "must be a number in (0, 1]",
    "stop": "must be a string or a list of at most 4 strings",
    "stop_token_ids": "must be a list of at most 64 token ids",
    "session": "must be a short string naming the editor whose requests share a prefix",
    "draft_tokens": f"must be an integer from 0 to {MAX_DRAFT_TOKENS} (tokens drafted from the prompt per "
                    "forward pass, greedy only)",
    "model": "must be the name of a served model (GET /v1/models lists them)",
    "stream": "must be true or false",
    "user": "must be a string",
    "n": "must be 1",
}

_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in (("completions", COMPLETIONS),
                                                                     ("chat", CHAT))}


def field_name(path: list[Any] | tuple[Any, ...]) -> str:
    """``["messages", 0, "content"]`` -> ``"messages[0].content"``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check_tree(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Valid Unicode everywhere and at most ``max_depth`` levels, walked without recursion."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > max_depth:
            top = field_name(path[:1])
            raise RequestSchemaError(f"'{top}' is nested more than {max_depth} levels deep.", top)
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, path)
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(item))


def _check_text(text: str, path: tuple[Any, ...]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        name = field_name(path)
        raise RequestSchemaError(f"'{name or 'the body'}' holds an unpaired surrogate ({text[exc.start]!r}) at "
                                 f"character {exc.start}: send valid Unicode text.", name or None) from None


def parse_body(raw: bytes) -> Any:
    """The JSON of ``raw``, or a RequestSchemaError saying what is wrong with it."""
    try:
        return json.loads(raw or b"")
    except RecursionError:
        raise RequestSchemaError(f"The request body is nested more than {MAX_DEPTH} levels deep.") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise RequestSchemaError(f"The request body is not valid JSON: {exc}") from None


def validate(body: Any, endpoint: str) -> dict[str, Any]:
    """``body`` if it is what ``endpoint`` ("completions" or "chat") takes; else RequestSchemaError."""
    if not isinstance(body, dict):
        raise RequestSchemaError("The request body must be a JSON object.")
    check_tree(body)
    errors = list(_VALIDATORS[endpoint].iter_errors(body))
    if errors:
        # The shallowest error, not one inside an anyOf's branches: for `"prompt": [1, 2**40]` the
        # field is `prompt` (no form of it fits), not whichever branch jsonschema would pick.
        raise _explain(max(errors, key=relevance))
    return body


def _explain(error: ValidationError) -> RequestSchemaError:
    path = list(error.absolute_path)
    if error.validator == "required":  # the missing field is in the message, not the path
        missing = re.match(r"'([^']+)'", error.message)
        if missing:
            path.append(missing.group(1))
            name = field_name(path)
            return RequestSchemaError(f"'{name}' is required: it {_must(path) or 'is missing'}.", name)
    name = field_name(path)
    if not name:
        return RequestSchemaError(f"The request body is not valid: {error.message}")
    must = _must(path) or f"is not valid: {error.message}"
    return RequestSchemaError(f"'{name}' {must}; got {_shown(error.instance)}.", name)


def _must(path: list[Any]) -> str | None:
    return MUST.get(re.sub(r"\[\d+\]", "[*]", field_name(path)))


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
