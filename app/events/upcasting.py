"""Events change shape between releases; the log keeps every event as it was written.

An event type's `schema_version` is the shape this code writes, and its `upcasts` the steps
from each older shape to the next: `upcasts[0]` turns a v1 payload into v2, `upcasts[1]` v2
into v3, and so on, declared next to the type (app/events/types.py). An older event is raised
to the current shape where it is read, the stream entry as the projectors get it, the log as a
rebuild stages it, a dead letter as it is retried, so the read models' folds and every other
reader know one shape only. Nothing is written back: the log stays as it was.

A step is a function of the JSON payload (a dict) that returns the next version's payload.
Most are made by the helpers here, which say what changed rather than how.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
Upcast = Callable[[Payload], Payload]


def lines_gain(name: str, value: Callable[[Payload], Any]) -> Upcast:
    """A step: each of the payload's `lines` gains the field `name`, `value(line)`."""

    def step(payload: Payload) -> Payload:
        lines = [{**line, name: value(line)} for line in payload["lines"]]
        return {**payload, "lines": lines}

    step.__doc__ = f"each line gains {name}"
    return step


def raise_to(upcasts: tuple[Upcast, ...], current: int, version: int, payload: Payload) -> Payload:
    """`payload`, written as `version`, in the `current` shape (version <= current)."""
    for step in upcasts[version - 1 : current - 1]:
        payload = step(payload)
    return payload
