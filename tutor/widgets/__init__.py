"""Widgets the kernel extension shows: anywidget classes with their JavaScript and CSS beside them."""

from .chat import ChatWidget
from .markdown import render_markdown
from .panel import Button, TutorPanel

__all__ = ["Button", "ChatWidget", "TutorPanel", "render_markdown"]
