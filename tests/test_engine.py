"""The layer engine: every decorator keeps metadata and flavour, rejects what it cannot wrap, and stacks."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import resilience as rs

# Every decorator the package offers, built fresh for each use (breakers are anonymous).
DECORATORS: dict[str, Callable[[], Callable[[Callable[..., Any]], Callable[..., Any]]]] = {
    "timeout": lambda: rs.timeout(5),
    "retry_on": lambda: rs.retry_on(ConnectionError),
    "circuit": lambda: rs.circuit(),
    "monitored": lambda: rs.monitored(),
    "fallback": lambda: rs.fallback(0),
    "Policy": lambda: rs.Policy(timeout=5.0, retry=rs.retry_on(ConnectionError), monitor="engine"),
}


def add(a: int, b: int = 2, *, scale: int = 1) -> int:
    """Add two numbers, then scale."""
    return (a + b) * scale


async def add_async(a: int, b: int = 2, *, scale: int = 1) -> int:
    """Add two numbers, then scale, asynchronously."""
    return (a + b) * scale


FLAVOURS = {"sync": add, "async": add_async}


@pytest.fixture(params=list(DECORATORS))
def decorator(request: pytest.FixtureRequest) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Each decorator in turn, freshly built."""
    return DECORATORS[request.param]()


def test_keeps_name_doc_and_wrapped(twin: Any, decorator: Callable[..., Any]) -> None:
    """A decorated function keeps ``__name__``, ``__qualname__``, ``__doc__`` and points ``__wrapped__`` at it."""
    fn = FLAVOURS[twin.kind]
    wrapped = decorator(fn)
    assert (fn.__name__, fn.__qualname__, fn.__doc__, fn.__module__) == (
        wrapped.__name__,
        wrapped.__qualname__,
        wrapped.__doc__,
        wrapped.__module__,
    )
    assert fn is inspect.unwrap(wrapped)


def test_keeps_signature(twin: Any, decorator: Callable[..., Any]) -> None:
    """``inspect.signature`` of a decorated function is the original signature."""
    fn = FLAVOURS[twin.kind]
    assert inspect.signature(fn) == inspect.signature(decorator(fn))


def test_keeps_sync_or_async_nature(twin: Any, decorator: Callable[..., Any]) -> None:
    """The wrapper of a coroutine function is a coroutine function; that of a plain function is not."""
    wrapped = decorator(FLAVOURS[twin.kind])
    assert twin.is_async == inspect.iscoroutinefunction(wrapped)
    assert 9 == twin.run(wrapped, 1, b=2, scale=3)


def test_async_callable_object_gets_an_async_wrapper(decorator: Callable[..., Any]) -> None:
    """An object with ``async def __call__`` is wrapped as a coroutine function and awaited."""

    class Fetch:
        async def __call__(self, key: str) -> str:
            return f"value of {key}"

    wrapped = decorator(Fetch())
    assert inspect.iscoroutinefunction(wrapped)

    async def main() -> str:
        return await wrapped("k")  # type: ignore[no-any-return]

    assert "value of k" == asyncio.run(main())


def test_sync_callable_object_gets_a_sync_wrapper(decorator: Callable[..., Any]) -> None:
    """An object with a plain ``__call__`` is wrapped as a plain function."""

    class Fetch:
        def __call__(self, key: str) -> str:
            return f"value of {key}"

    wrapped = decorator(Fetch())
    assert not inspect.iscoroutinefunction(wrapped)
    assert "value of k" == wrapped("k")


def test_class_with_async_call_stays_a_sync_constructor() -> None:
    """Decorating a class whose *instances* have ``async def __call__`` keeps calling the class synchronous."""

    class Client:
        async def __call__(self) -> str:
            return "called"

    wrapped = rs.retry_on(ConnectionError)(Client)
    assert not inspect.iscoroutinefunction(wrapped)
    assert isinstance(wrapped(), Client)


def test_generator_function_rejected(decorator: Callable[..., Any]) -> None:
    """A generator function is refused at decoration time: its body runs after the call returns."""

    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator function"):
        decorator(numbers)


def test_async_generator_function_rejected(decorator: Callable[..., Any]) -> None:
    """An async generator function is refused at decoration time."""

    async def numbers() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator function"):
        decorator(numbers)


@pytest.mark.parametrize("thing", [42, "fetch", None], ids=["int", "str", "None"])
def test_non_callable_rejected(thing: object) -> None:
    """Decorating something that is not callable is a TypeError naming it."""
    for build in DECORATORS.values():
        with pytest.raises(TypeError, match=repr(thing)):
            build()(thing)  # type: ignore[arg-type]


STACKABLE = {
    "monitored": lambda: rs.monitored("stack"),
    "retry_on": lambda: rs.retry_on(ConnectionError, attempts=3),
    "circuit": lambda: rs.circuit(fail_max=5),
    "timeout": lambda: rs.timeout(10),
}


@pytest.mark.parametrize("order", list(itertools.permutations(STACKABLE)), ids="-".join)
def test_layers_stack_in_any_order(twin: Any, clock: rs.testing.FakeClock, order: tuple[str, ...]) -> None:
    """Any order of monitored, retry_on, circuit and timeout runs the call, retries it, and keeps its flavour."""
    failures = iter([ConnectionError("blip")])

    def body(a: int, *, b: int) -> int:
        for exc in failures:
            raise exc
        return a + b

    fn = twin.wrap(body)
    for name in reversed(order):  # the first name is the outermost layer
        fn = STACKABLE[name]()(fn)
    assert twin.is_async == inspect.iscoroutinefunction(fn)
    assert 3 == twin.run(fn, 1, b=2)
