"""Per-endpoint policies a service imports: one line each, tuned to what the endpoint is.

    from endpoints import INTERNAL, EXTERNAL, UPLOAD, BEACON, session

    @INTERNAL
    def get_user(uid: int) -> dict:
        return session.get(f"{USERS}/users/{uid}").json()

Run: python examples/endpoints.py   (a few seconds, against a misbehaving loopback server)
"""

from __future__ import annotations

import logging

import requests

import resilience as rs
from resilience import http

# An internal API on the same network: fail fast, retry quickly, a tight deadline.
INTERNAL = http.policy("users-api", timeout=(1.0, 5.0), deadline=8.0, attempts=3, wait_initial=0.1, wait_max=1.0)

# An external API over the internet: patient timeouts, honour its Retry-After up to a
# minute, and a breaker that waits longer before probing it again.
EXTERNAL = http.policy("payments-api", timeout=(5.0, 30.0), deadline=60.0, reset_timeout=60.0, idempotent=True)

# An upload: a long read timeout for the server to digest the body, few attempts
# (each one re-sends the whole body), and a deadline that covers both.
UPLOAD = http.policy("uploads", timeout=(10.0, 60.0), deadline=150.0, attempts=2)

# Telemetry: never slows the caller down and never raises; failures are dropped and counted.
BEACON = http.best_effort("telemetry", timeout=(0.5, 1.0))

# One Session for the whole service: pooled connections, no request without a timeout.
session = http.Session(pool_maxsize=20)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)-7s %(message)s")
    with rs.testing.DemoServer() as server:

        @INTERNAL
        def get_user(uid: int) -> requests.Response:
            # /seq answers 503, then 200: the first attempt fails, the retry succeeds.
            return session.get(server.url(f"/seq/user-{uid}?codes=503,200"))

        @EXTERNAL
        def charge(cents: int) -> requests.Response:
            # A POST: retried only because EXTERNAL gives each call an Idempotency-Key.
            response = session.post(server.url("/seq/charge?codes=502,200"), json={"cents": cents})
            response.raise_for_status()
            return response

        @UPLOAD
        def upload(data: bytes) -> int:
            return session.put(server.url("/ok"), data=data).status_code

        @BEACON
        def beacon(event: str) -> requests.Response:
            return session.post(server.url("/hang"), json={"event": event})  # cut by its 1 s read timeout, then dropped

        print("user:", get_user(7).json())
        print("charge:", charge(1999).json(), "key:", server.requests[-1][2].get("Idempotency-Key"))
        print("upload:", upload(b"x" * 10_000))
        print("beacon:", beacon("page_view"))
        for name in ("users-api", "payments-api", "uploads", "telemetry"):
            snapshot = rs.monitor.snapshot(name)
            print(f"{name:13} calls={snapshot['calls']} outcomes={snapshot['outcomes']} retries={snapshot['retries']}")


if __name__ == "__main__":
    main()
