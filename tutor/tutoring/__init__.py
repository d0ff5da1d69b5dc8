"""Tutoring: diagnoses of common errors, explanations, fixes that are checked before they are shown,
and conversation. Text in, structured results and streams out; nothing here knows about Jupyter
or widgets."""

from .chat import Conversation, notebook_context
from .diagnose import KINDS, Diagnosis, diagnose
from .explain import LANGUAGES, LEVELS, error_messages, explain, explain_error, explain_messages
from .fix import FixResult, check_fix, extract_code, propose_fix, unified_diff

__all__ = [
    "KINDS",
    "LANGUAGES",
    "LEVELS",
    "Conversation",
    "Diagnosis",
    "FixResult",
    "check_fix",
    "diagnose",
    "error_messages",
    "explain",
    "explain_error",
    "explain_messages",
    "extract_code",
    "notebook_context",
    "propose_fix",
    "unified_diff",
]
