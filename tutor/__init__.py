"""tutor: a Jupyter-based interactive code tutor on Google's CodeGemma models."""

__version__ = "0.1.0"


def load_ipython_extension(shell):  # noqa: ANN001 - IPython's hook
    """`%load_ext tutor`: magics and help when a cell fails (see tutor.kernel)."""
    from .kernel import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell):  # noqa: ANN001
    from .kernel import unload_ipython_extension as unload

    unload(shell)
