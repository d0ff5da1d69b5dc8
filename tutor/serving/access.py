"""Who may reach `tutor serve`: a token beyond loopback, and only the host names it answers to.

Two rules, as jupyter_server has them:

- Listening beyond loopback without a token would give the model (and the grader) to anyone who can
  reach the machine, so it is refused at start, with the fix in the message.
- A web page the student opens can make the browser talk to 127.0.0.1 under a name its attacker
  controls (DNS rebinding). The browser then sends that name as Host (and the page's Origin), so a
  request whose Host or Origin is not one of this server's names is refused (403).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from ..engine.errors import TutorError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
TOKEN_ENV = "TUTOR_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token, saying how to fix it."""
    if token or is_loopback(host):
        return
    raise TutorError(
        f"refusing to listen on {host or 'every address'} without a token: anyone who can reach this machine "
        f"could use the model. Pass --token SECRET (or set {TOKEN_ENV}) and give SECRET to your students' "
        "notebooks as TUTOR_TOKEN, or listen on loopback only (--host 127.0.0.1, the default).")


class HostCheck:
    """The Host and Origin names a server answers to: loopback, the address it is bound to, the
    machine's own name, and what --allow-host adds ("*" allows any)."""

    def __init__(self, bound: str, allow: Iterable[str] = ()):
        names = {*LOOPBACK_NAMES, bound.strip("[]").lower()}
        if not is_loopback(bound):  # a class server: students type the machine's name
            names |= _own_names()
        self.allow_any = False
        for name in allow:
            name = name.strip().lower()
            if name == "*":
                self.allow_any = True
            elif name:
                names.add(name.strip("[]"))
        self.names = frozenset(n for n in names if n and n not in ("0.0.0.0", "::"))

    def allows(self, name: str | None) -> bool:
        return self.allow_any or (name is not None and (name in self.names or name.endswith(".localhost")))

    def refusal(self, host_header: str | None, origin: str | None) -> str | None:
        """Why a request with these headers is refused, or None when it may go on."""
        host = host_name(host_header)
        if not self.allows(host):
            return (f"Host {host_header!r} is not a name this server answers to (it guards against DNS rebinding). "
                    f"If students reach it by that name, start it with --allow-host {host or 'NAME'}.")
        if origin is not None:
            origin_host = urlsplit(origin).hostname if origin != "null" else None
            if not self.allows(origin_host):
                return (f"Origin {origin!r} may not use this server (a web page of another site). If it is yours, "
                        f"start the server with --allow-host {origin_host or 'NAME'}.")
        return None


def _own_names() -> set[str]:
    """This machine's name and the addresses it resolves to (best effort: no DNS, no names)."""
    hostname = socket.gethostname().lower()
    names = {hostname, hostname.split(".")[0], socket.getfqdn(hostname).lower()}
    try:
        names |= {str(info[4][0]).lower() for info in socket.getaddrinfo(hostname, None)}
    except OSError:
        pass
    return names


def host_name(header: str | None) -> str | None:
    """The name in a Host header, without its port: "[::1]:8000" -> "::1", "a.b:80" -> "a.b"."""
    if not header:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else None
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header or None
