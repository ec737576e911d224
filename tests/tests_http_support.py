"""Helpers for the HTTP tests (imported by name; tests/ is on sys.path)."""

from __future__ import annotations

from resilience._demo_server import DemoServer


def hits_with_key(server: DemoServer, path: str) -> list[str | None]:
    """The Idempotency-Key of every request the server saw on ``path``, in order."""
    with server.lock:
        seen = [headers for _, p, headers in server.requests if p == path]
    return [next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None) for headers in seen]
