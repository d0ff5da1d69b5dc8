"""Tutoring: explanations, fixes and hints on text, with no knowledge of Jupyter, widgets or models."""

from .diagnose import KINDS, Diagnosis, diagnose

__all__ = ["KINDS", "Diagnosis", "diagnose"]
