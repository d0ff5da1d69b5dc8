"""The Jupyter server extension: inline completion for JupyterLab, and the embedded model worker.

Enabled by etc/jupyter/jupyter_server_config.d/tutor.json (installed with the package), or by hand:
``jupyter server --ServerApp.jpserver_extensions="{'tutor.server': True}"``.
Settings come from :func:`tutor.settings.resolve_settings` (environment > ``c.Tutor.*`` Jupyter config).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jupyter_server.utils import url_path_join

from .completion import Completer, CompletionRequest, Shaper, prompt_parts
from .handlers import CompleteHandler, StatusHandler


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "tutor.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    config = {k: v for k, v in dict(serverapp.config.get("Tutor", {})).items()}
    completer = Completer(config=config, root_dir=getattr(serverapp, "root_dir", None))
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tutor-inline")
    base = serverapp.web_app.settings["base_url"]
    args = {"completer": completer, "executor": executor}
    serverapp.web_app.add_handlers(".*$", [
        (url_path_join(base, "tutor", "complete"), CompleteHandler, args),
        (url_path_join(base, "tutor", "status"), StatusHandler, args),
    ])
    serverapp.web_app.settings["tutor_completer"] = completer
    if completer.policy.notice:  # said once, in the server's log, for the teacher
        serverapp.log.warning("%s", completer.policy.notice)
    serverapp.log.info("tutor: inline completion at %s (model: %s)", url_path_join(base, "tutor", "complete"),
                       completer.settings.completion_model or completer.settings.endpoint or "not configured")


__all__ = ["Completer", "CompletionRequest", "Shaper", "prompt_parts"]
