"""The HTTP transport's guards: loopback by default, a bearer token when bound
anywhere else, DNS-rebinding protection and a request size limit; and
``GET /health`` for monitors and load balancers."""

from __future__ import annotations

import hmac
import json
import os

from mcp.server.transport_security import TransportSecuritySettings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _local_names() -> list[str]:
    """Host names and addresses a client on the network may use to reach this machine."""
    import socket

    names = {"127.0.0.1", "localhost", "[::1]"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name)
            try:
                names.update(socket.gethostbyname_ex(name)[2])
            except OSError:
                pass
    return sorted(names)


class BearerTokenMiddleware:
    """Reject any HTTP request without ``Authorization: Bearer <token>``."""

    def __init__(self, app, token: str):
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body",
                            "body": b'{"error": "missing or wrong bearer token"}'})
                return
        await self.app(scope, receive, send)


class HealthEndpoint:
    """``GET /health`` answers ``{"status": "ok", ...}`` without a token: it
    says only that the server runs (no data, no configuration)."""

    def __init__(self, app, body: dict):
        self.app = app
        self._body = json.dumps(body).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path") == "/health":
            if scope.get("method") not in ("GET", "HEAD"):
                await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"GET, HEAD")]})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": self._body if scope["method"] == "GET" else b""})
            return
        await self.app(scope, receive, send)


def bearer_token(config) -> str | None:
    return os.environ.get(config.server.bearer_token_env) or None


def build_http_app(server, config, host: str, port: int):
    """The streamable-HTTP ASGI app with our guards around it."""
    token = bearer_token(config)
    if host not in LOOPBACK_HOSTS and not token:
        raise ValueError(
            f"refusing to serve HTTP on {host}: a non-loopback address needs a bearer token. "
            f"Set {config.server.bearer_token_env} in the environment (clients then send "
            "'Authorization: Bearer <token>'), or bind to 127.0.0.1."
        )
    if host in LOOPBACK_HOSTS:
        allowed_hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        allowed_origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    else:
        # a wildcard bind (0.0.0.0, ::) is reached by this machine's names and
        # addresses, never by "0.0.0.0" itself; the bearer token guards it
        names = [host] if host not in WILDCARD_HOSTS else _local_names()
        allowed_hosts = [f"{n}:*" for n in names] + [f"{n}:{port}" for n in names]
        allowed_origins = [f"{scheme}://{n}:*" for n in names for scheme in ("http", "https")]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins
    )
    app = server.streamable_http_app(
        transport_security=security, host=host, max_request_body_size=config.server.max_request_bytes
    )
    from . import __version__

    guarded = BearerTokenMiddleware(app, token) if token else app
    return HealthEndpoint(guarded, {"status": "ok", "server": "mcp-tars", "version": __version__, "endpoint": "/mcp"})
