"""Named shared state (breakers, bulkheads, rate limits): declared once, shared by name.

``clear()`` (what ``rs.testing.reset()`` calls) resets every object in place and frees
its name: functions decorated earlier keep their object, still found by ``get()``, and a
later declaration that matches it exactly takes it back; any other declaration of the
name starts a new object.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Resettable(Protocol):
    def reset(self) -> None: ...


T = TypeVar("T", bound=Resettable)


class NamedRegistry(Generic[T]):
    """Objects of one kind by name; ``kind`` is the factory's name in messages ("circuit")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.live: dict[str, T] = {}
        self._parked: weakref.WeakValueDictionary[str, T] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def declare(
        self, name: str, build: Callable[[], T], same: Callable[[T], bool], conflict: Callable[[T], str | None]
    ) -> T:
        """The object registered as ``name``, or a new one from ``build()``.

        ``same(obj)``: a parked object is exactly what is declared (it is taken back).
        ``conflict(obj)``: why the registered object cannot serve this declaration, or None.
        """
        with self._lock:
            current = self.live.get(name)
            if current is None:
                parked = self._parked.pop(name, None)
                current = parked if parked is not None and same(parked) else build()
                self.live[name] = current
                return current
        problem = conflict(current)
        if problem is not None:
            raise ValueError(f"{self.kind} {name!r} already exists {problem}, or use rs.{self.kind}.get({name!r})")
        return current

    def get(self, name: str) -> T:
        """The object registered (or parked) under ``name``; KeyError naming the known ones."""
        found = self.live.get(name) or self._parked.get(name)
        if found is None:
            raise KeyError(f"no {self.kind} named {name!r}; known: {self.names()}")
        return found

    def names(self) -> list[str]:
        return sorted(self.live)

    def clear(self) -> None:
        with self._lock:
            objects = list(self.live.items())
            self.live.clear()
        for name, obj in objects:
            obj.reset()
            self._parked[name] = obj


class NamedFactory(Generic[T]):
    """What ``rs.circuit``, ``rs.bulkhead`` and ``rs.rate_limit`` share besides building layers."""

    def __init__(self, registry: NamedRegistry[T]) -> None:
        self.registry = registry

    def get(self, name: str) -> T:
        """The object registered under ``name`` (KeyError naming the known ones if none)."""
        return self.registry.get(name)

    def names(self) -> list[str]:
        """Names of every registered object, sorted."""
        return self.registry.names()

    def clear(self) -> None:
        """Reset every object in place and free their names (tests; see ``rs.testing.reset()``).

        Functions decorated earlier keep their object, still found by ``get``; a new
        declaration of the name, with any configuration, starts a new one.
        """
        self.registry.clear()

    def __repr__(self) -> str:
        return f"rs.{self.registry.kind}"
