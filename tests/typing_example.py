"""Not a test: checked by ``mypy --strict resilience tests/typing_example.py``.

Every decorator and a Policy keep the precise signature of what they wrap (ParamSpec),
for ``def`` and ``async def``. Were a signature lost to ``Callable[..., Any]``, the
annotated assignments would still pass but each ``# type: ignore[...]`` below would
become unused, which ``--strict`` (warn_unused_ignores) reports as an error.
"""

from __future__ import annotations

import dataclasses

import resilience as rs

USERS = rs.Policy(
    timeout=10.0,
    attempt_timeout=3.0,
    retry=rs.retry_on(ConnectionError, attempts=3),
    circuit=rs.circuit("typing-users", fail_max=5),
    monitor="typing-users",
    fallback=rs.fallback(factory=lambda exc: -1),
)
SHORTER: rs.Policy = dataclasses.replace(USERS, timeout=5.0)


@rs.timeout(2.0)
def add(a: int, b: int) -> int:
    return a + b


@rs.retry_on(ConnectionError, attempts=3)
def greet(name: str, *, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


@rs.circuit("typing-prices")
def price(sku: str) -> float:
    return 9.5


@rs.monitored("typing-tags")
def tags(limit: int = 3) -> list[str]:
    return ["a", "b", "c"][:limit]


@rs.fallback(None)
def maybe(key: str) -> bytes | None:
    return key.encode()


@USERS
def user(uid: int) -> dict[str, int]:
    return {"id": uid}


@rs.monitored("typing-stack")
@rs.fallback(0)
@rs.timeout(10)
@rs.retry_on(ConnectionError)
@rs.circuit("typing-stack")
@rs.timeout(2, mode="signal")
def stacked(a: int, b: int) -> int:
    return a * b


@rs.timeout(2.0)
async def add_async(a: int, b: int) -> int:
    return a + b


@rs.retry_on(ConnectionError, attempts=3)
async def greet_async(name: str, *, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


@rs.circuit("typing-prices-async")
async def price_async(sku: str) -> float:
    return 9.5


@rs.monitored()
async def tags_async(limit: int = 3) -> list[str]:
    return ["a", "b", "c"][:limit]


@rs.fallback(factory=lambda exc: None)
async def maybe_async(key: str) -> bytes | None:
    return key.encode()


@SHORTER
async def user_async(uid: int) -> dict[str, int]:
    return {"id": uid}


def user_plain(uid: int) -> dict[str, int]:
    return {"id": uid}


async def user_plain_async(uid: int) -> dict[str, int]:
    return {"id": uid}


def use_sync() -> None:
    n: int = add(1, 2)
    s: str = greet("ada", punctuation="?")
    p: float = price("A1")
    t: list[str] = tags()
    m: bytes | None = maybe("k")
    u: dict[str, int] = user(7)
    x: int = stacked(2, 3)
    via_call: dict[str, int] = USERS.call(user_plain, 7)
    print(n, s, p, t, m, u, x, via_call)

    # Wrong arguments and results must be errors: these ignores are "used" only while
    # the decorators keep the signatures.
    add("1", 2)  # type: ignore[arg-type]
    greet("ada", exclaim=True)  # type: ignore[call-arg]
    wrong: str = price("A1")  # type: ignore[assignment]
    user()  # type: ignore[call-arg]
    print(wrong)


async def use_async() -> None:
    n: int = await add_async(1, 2)
    s: str = await greet_async("ada", punctuation="?")
    p: float = await price_async("A1")
    t: list[str] = await tags_async()
    m: bytes | None = await maybe_async("k")
    u: dict[str, int] = await user_async(7)
    via_acall: dict[str, int] = await USERS.acall(user_plain_async, 7)
    print(n, s, p, t, m, u, via_acall)

    await add_async(1, "2")  # type: ignore[arg-type]
    wrong: int = await greet_async("ada")  # type: ignore[assignment]
    print(wrong)


@rs.bulkhead(4)
@rs.rate_limit(10, per=1.0)
def limited(a: int, b: int) -> int:
    return a + b


@rs.hedge(0.05)
@rs.bulkhead(2, name="typing-bulkhead")
async def hedged(key: str) -> bytes:
    return key.encode()


BUDGETED = rs.retry_on(ConnectionError, budget=rs.RetryBudget(ratio=0.2))


@BUDGETED
def budgeted(x: int) -> str:
    return str(x)


def use_overload_layers() -> None:
    total: int = limited(1, 2)
    text: str = budgeted(3)
    print(total, text)
    limited(1, "2")  # type: ignore[arg-type]
    bad: str = limited(1, 2)  # type: ignore[assignment]
    print(bad)


async def use_hedged() -> None:
    data: bytes = await hedged("k")
    print(data)
    await hedged(1)  # type: ignore[arg-type]
