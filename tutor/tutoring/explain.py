"""Explanations of code and of errors, from the instruction-tuned model.

This module writes the instructions (what to ask); the turn format itself lives in tutor.prompts
and the transport in tutor.backends.
"""

from __future__ import annotations

from ..backends.base import DEFAULT_OPTIONS, Backend, CompletionStream, GenerationOptions, Message

LEVELS = {
    "beginner": "The student is a beginner: use plain words, define any term you use, and keep it short.",
    "intermediate": "The student knows the basics: be precise and mention the idioms involved.",
    "expert": "The student is experienced: be concise and technical; mention edge cases and complexity.",
}

LANGUAGES = {
    "python": "Python", "c++": "C++", "cpp": "C++", "c#": "C#", "csharp": "C#", "go": "Go", "java": "Java",
    "javascript": "JavaScript", "js": "JavaScript", "kotlin": "Kotlin", "rust": "Rust",
}

TUTOR_VOICE = ("You are a patient programming tutor in a Jupyter notebook. Answer in Markdown. "
               "Guide the student's understanding; do not write their assignment for them.")


def language_name(language: str) -> str:
    try:
        return LANGUAGES[language.lower()]
    except KeyError:
        raise ValueError(f"unknown language {language!r}: use one of {', '.join(sorted(set(LANGUAGES)))}") from None


def level_instruction(level: str) -> str:
    try:
        return LEVELS[level]
    except KeyError:
        raise ValueError(f"unknown level {level!r}: use beginner, intermediate or expert") from None


def explain_messages(code: str, *, level: str = "beginner", language: str = "python") -> list[Message]:
    lang = language_name(language)
    return [
        {"role": "system", "content": f"{TUTOR_VOICE} {level_instruction(level)}"},
        {"role": "user", "content": f"Explain what this {lang} code does, step by step.\n\n"
                                    f"```{lang.lower()}\n{code}\n```"},
    ]


def explain(backend: Backend, code: str, *, level: str = "beginner", language: str = "python",
            options: GenerationOptions = DEFAULT_OPTIONS) -> CompletionStream:
    """Stream an explanation of ``code``."""
    if not code.strip():
        raise ValueError("there is no code to explain: the cell is empty.")
    return backend.chat(explain_messages(code, level=level, language=language), options)


def error_messages(source: str, error: str, *, hint: str | None = None, level: str = "beginner") -> list[Message]:
    known = f"\n\nA first reading of the error: {hint}" if hint else ""
    return [
        {"role": "system", "content": f"{TUTOR_VOICE} {level_instruction(level)}"},
        {"role": "user", "content": "My notebook cell failed. Explain in plain language what the error means, "
                                    "where it comes from in my code, and what I should check. Do not rewrite "
                                    f"the whole cell.\n\n```python\n{source}\n```\n\nThe error:\n```\n{error}\n```"
                                    f"{known}"},
    ]


def explain_error(backend: Backend, source: str, error: str, *, hint: str | None = None, level: str = "beginner",
                  options: GenerationOptions = DEFAULT_OPTIONS) -> CompletionStream:
    """Stream a deeper explanation of a failing cell's error."""
    return backend.chat(error_messages(source, error, hint=hint, level=level), options)
