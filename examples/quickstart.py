"""Quickstart: harden a flaky, sometimes slow dependency and watch what it does.

Run: python examples/quickstart.py   (about two seconds, no network)
"""

from __future__ import annotations

import json
import logging
import random
import time

import resilience as rs

logging.basicConfig(level=logging.WARNING, format="%(levelname)-7s %(message)s")
random.seed(7)


class FlakyInventory:
    """A stand-in for a remote API: fails now and then, sometimes hangs, then goes down."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    def stock(self, sku: str) -> int:
        self.calls += 1
        if self.down:
            raise ConnectionError("connection refused")
        roll = random.random()
        if roll < 0.15:
            raise ConnectionError("connection reset by peer")
        if roll < 0.18:
            time.sleep(0.5)  # a hang: the attempt timeout cuts it at 0.1 s
        return len(sku) * 3


inventory = FlakyInventory()


@rs.monitored("inventory")
@rs.fallback(0)  # degrade to "out of stock" rather than fail the page
@rs.retry_on(ConnectionError, TimeoutError, attempts=3, wait_initial=0.01, wait_max=0.05)
@rs.circuit("inventory", fail_max=5, reset_timeout=0.3)
@rs.timeout(0.1)
def stock(sku: str) -> int:
    """How many items of ``sku`` are in stock."""
    return inventory.stock(sku)


# The same stack as one object a service can import and reuse:
PRICING = rs.Policy(
    timeout=1.0,
    attempt_timeout=0.1,
    retry=rs.retry_on(ConnectionError, TimeoutError, attempts=3, wait_initial=0.01),
    circuit=rs.circuit("pricing", fail_max=3, reset_timeout=0.3),
    monitor="pricing",
    fallback=rs.fallback(None),
)


@PRICING
def price(sku: str) -> float:
    return 9.99


def main() -> None:
    print("policy:", PRICING.describe())
    for i in range(30):
        stock(f"sku-{i}")
        price(f"sku-{i}")
    print(f"30 calls made {inventory.calls} attempts; every caller got an answer")
    print("\n-- the inventory API goes down --")
    inventory.down = True
    before = inventory.calls
    for i in range(6):
        stock(f"sku-{i}")
    print(f"6 calls while down reached the API {inventory.calls - before} times; the breaker answered the rest")
    print("breaker:", rs.circuit.get("inventory").stats())
    inventory.down = False
    time.sleep(0.35)  # the breaker's reset_timeout: next call is a half-open trial
    stock("sku-back")
    print("after recovery the breaker is", rs.circuit.get("inventory").state)

    snapshot = rs.monitor.snapshot("inventory")
    latency = {k: f"{v * 1000:.1f} ms" for k, v in snapshot["latency"].items()}
    print("\ninventory:", json.dumps({k: snapshot[k] for k in ("calls", "ok", "failed", "retries", "outcomes")}))
    print("latency:  ", latency)
    print("health:   ", json.dumps(rs.monitor.health()["names"]["inventory"]))


if __name__ == "__main__":
    main()
