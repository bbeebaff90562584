"""In-process event fan-out for ``GET /v1/events`` (server-sent events).

Each subscriber gets a bounded queue; a subscriber that falls too far behind is
dropped (its stream ends, and the console reconnects and re-reads state) rather
than letting memory grow. Events carry ids and metadata only, never alert
plaintext: a client that wants content reads it through the authenticated API.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

MAX_BACKLOG = 1000


class EventBus:
    """Publish small JSON events to every live subscriber."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[tuple[int, str, str] | None]] = set()
        self._ids = itertools.count(1)
        self.observers: list[Callable[[str, dict[str, Any]], None]] = []
        """Called with every published event, subscribers or not (the node's metrics)."""

    def subscribe(self) -> asyncio.Queue[tuple[int, str, str] | None]:
        queue: asyncio.Queue[tuple[int, str, str] | None] = asyncio.Queue(MAX_BACKLOG)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[tuple[int, str, str] | None]) -> None:
        self._subscribers.discard(queue)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        for observe in self.observers:
            observe(kind, data)
        event = (next(self._ids), kind, json.dumps(data, separators=(",", ":"), sort_keys=True))
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                queue.get_nowait()  # make room for the end-of-stream marker
                queue.put_nowait(None)

    def close(self) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()  # make room for the end-of-stream marker
            queue.put_nowait(None)
        self._subscribers.clear()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
