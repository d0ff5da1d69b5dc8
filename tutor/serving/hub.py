"""`tutor serve --hub`: the server as a JupyterHub managed service, each request vouched for by the Hub.

The Hub starts the service with its settings in the environment (JUPYTERHUB_API_URL,
JUPYTERHUB_API_TOKEN, JUPYTERHUB_SERVICE_URL, JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_OAUTH_ACCESS_SCOPES).
A student's request carries their own Hub token (`Authorization: Bearer <token>` or `token <token>`:
a single-user server's JUPYTERHUB_API_TOKEN, or one made on the Hub's token page); jupyterhub's
HubAuth asks the Hub whose it is and what it may do. There is no class token to leak, and the Hub's
user name is the requester for fairness and the per-student cap.

jupyterhub is imported only here, and only with --hub: a student's machine never needs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import tornado.web

from ..engine.errors import TutorError

# HubAuth remembers the Hub's answer for a token this long: one Hub API call per student per minute,
# not per keystroke, while a revoked token stops working within a minute (HubAuth's default is 5).
CACHE_SECONDS = 60


@dataclass(frozen=True)
class HubService:
    """Where the Hub says this service lives: the address to listen on and the path prefix it routes."""

    host: str
    port: int
    prefix: str  # e.g. "/services/tutor/": the proxy passes the whole path on, prefix included


def service_from_env(environ: dict[str, str] | os._Environ = os.environ) -> HubService:
    """The listening address and prefix from the environment the Hub gives a managed service."""
    url = environ.get("JUPYTERHUB_SERVICE_URL")
    if not environ.get("JUPYTERHUB_API_URL") or not url:
        raise TutorError("--hub: JUPYTERHUB_API_URL and JUPYTERHUB_SERVICE_URL are not set. Run `tutor serve --hub` "
                         "as a JupyterHub managed service (c.JupyterHub.services, with a \"url\"; see "
                         "docs/jupyterhub_config.py), which sets them.")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise TutorError(f"--hub: JUPYTERHUB_SERVICE_URL={url!r} is not an http://HOST:PORT address; give the "
                         "service a \"url\" such as http://127.0.0.1:10101 in jupyterhub_config.py.")
    inner = (environ.get("JUPYTERHUB_SERVICE_PREFIX") or parts.path).strip("/")
    return HubService(parts.hostname, parts.port or 80, f"/{inner}/" if inner else "/")


class HubGate:
    """Authenticates requests with jupyterhub's HubAuth; a handler's ``user`` is the Hub's name."""

    def __init__(self) -> None:
        try:
            from jupyterhub.services.auth import HubAuth
        except ImportError:
            raise TutorError("--hub needs jupyterhub on the server: pip install jupyterhub (the same version "
                             "as the Hub's is best).") from None
        self.auth = HubAuth(cache_max_age=CACHE_SECONDS)
        # What a token must allow: access to this service, access:services!service=<name> (HubAuth takes
        # it from JUPYTERHUB_OAUTH_ACCESS_SCOPES, else from the JUPYTERHUB_SERVICE_NAME the Hub sets).
        self.scopes = set(self.auth.access_scopes)
        if not self.scopes:
            raise TutorError("--hub: the Hub gave no access scope (JUPYTERHUB_OAUTH_ACCESS_SCOPES, "
                             "JUPYTERHUB_SERVICE_NAME); run the server as a JupyterHub 2+ managed service.")

    async def authenticate(self, handler: Any) -> None:
        """Set ``handler.user`` to the Hub's name for the request's token, or answer 401/403/502 and finish."""
        token = self.auth.get_token(handler, in_cookie=False)
        if not token:
            return handler.fail(401, "No JupyterHub token: send 'Authorization: Bearer <token>' with your Hub API "
                                     "token (a single-user server's JUPYTERHUB_API_TOKEN, or one from the Hub's "
                                     "token page).", "authentication_error")
        try:
            model = await self.auth.user_for_token(token, sync=False)
        except tornado.web.HTTPError as exc:  # the Hub is down or refused us: not the student's fault
            return handler.fail(502, f"Cannot check the token with JupyterHub at {self.auth.api_url} "
                                     f"({exc.log_message or exc.status_code}); tell the Hub's administrator.",
                                "server_error")
        if not model:
            return handler.fail(401, "The Hub does not know this token (expired or revoked?); get a new one.",
                                "authentication_error")
        if not self.auth.check_scopes(self.scopes, model):
            return handler.fail(403, f"The Hub's {model.get('kind', 'user')} {model.get('name')!r} may not use this "
                                     f"service: its token lacks {' or '.join(sorted(self.scopes))} (the Hub's "
                                     "roles grant it; see docs/serving.md#jupyterhub).", "permission_error")
        # A service calling with its own token is told apart from a user of the same name.
        name = str(model["name"])
        handler.user = name if model.get("kind", "user") == "user" else f"service:{name}"
