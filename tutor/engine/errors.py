"""Errors the engine raises. Each message names the file or value at fault and what to do."""


class TutorError(Exception):
    """Base of every error the tutor raises on purpose; the message is meant for a person."""


class CheckpointError(TutorError):
    """A model folder or file cannot be used: missing, corrupt, unsafe, or not CodeGemma."""


class TokenizerError(CheckpointError):
    """tokenizer.model is missing, unreadable, or lacks the CodeGemma special pieces."""


class PromptError(TutorError):
    """A prompt cannot be run: too long for the context, empty, or malformed messages."""


class SettingError(TutorError, ValueError):
    """An option or environment variable has a value the engine does not know."""
