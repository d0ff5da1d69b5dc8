"""The one place that decides which models and endpoint the tutor uses, and why.

Precedence: command-line flags > environment > Jupyter (traitlets) config > defaults. Every
surface (CLI, kernel extension, server extension) calls :func:`resolve_settings`, so they agree,
and each value remembers where it came from so `%tutor status` can say why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# setting name -> environment variable
ENVIRONMENT = {
    "completion_model": "TUTOR_COMPLETION_MODEL",
    "chat_model": "TUTOR_CHAT_MODEL",
    "endpoint": "TUTOR_ENDPOINT",
    "token": "TUTOR_TOKEN",
    "device": "TUTOR_DEVICE",
    "policy": "TUTOR_POLICY",
}


@dataclass(frozen=True)
class Settings:
    completion_model: str | None = None  # a folder or hub name (local), or the served model's id (remote)
    chat_model: str | None = None
    endpoint: str | None = None  # an OpenAI-compatible server shared by a class; nothing loads locally
    token: str | None = None
    device: str | None = None
    policy: str | None = None  # a course policy file (see tutor.tutoring.policy)
    sources: Mapping[str, str] = field(default_factory=dict)  # setting -> where its value came from

    @property
    def remote(self) -> bool:
        return bool(self.endpoint)

    def describe(self) -> list[str]:
        """One line per setting: its value (the token hidden) and where it came from."""
        lines = []
        for name in ENVIRONMENT:
            value = getattr(self, name)
            shown = "(set)" if name == "token" and value else (value or "(not set)")
            lines.append(f"{name}: {shown}  [{self.sources.get(name, 'default')}]")
        return lines


def resolve_settings(cli: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> Settings:
    """Merge the sources; empty strings count as unset, so `TUTOR_ENDPOINT=` turns nothing on."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, env_name in ENVIRONMENT.items():
        for source, value in (("command line", (cli or {}).get(name)),
                              (f"environment {env_name}", environ.get(env_name)),
                              ("Jupyter config", (config or {}).get(name))):
            if value not in (None, ""):
                values[name], sources[name] = str(value), source
                break
    if values.get("endpoint"):
        values["endpoint"] = values["endpoint"].rstrip("/")
        if not values.get("token") and (hub := hub_token(values["endpoint"], environ)):
            values["token"], sources["token"] = hub, "environment JUPYTERHUB_API_TOKEN (the endpoint is a Hub service)"
    return Settings(**values, sources=sources)


def hub_token(endpoint: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The single-user server's own Hub token, where the endpoint is a service of that Hub.

    A student's server spawned by JupyterHub has JUPYTERHUB_API_TOKEN; `tutor serve --hub` behind the
    Hub's proxy (.../services/<name>/) accepts it as the student's key. Sent only to a path under the
    Hub's services/, never to another server: the token is the student's identity on the Hub.
    """
    environ = os.environ if environ is None else environ
    token = environ.get("JUPYTERHUB_API_TOKEN")
    if not token:
        return None
    services = (environ.get("JUPYTERHUB_BASE_URL") or "/").rstrip("/") + "/services/"
    return token if urlsplit(endpoint).path.startswith(services) else None
