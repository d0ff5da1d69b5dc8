"""tutor: a Jupyter-based interactive code tutor on Google's CodeGemma models."""

__version__ = "0.1.0"
