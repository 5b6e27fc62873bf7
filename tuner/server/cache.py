"""A one-second memory of read answers: many viewers of one page cost one store read a second.

Fifty people watching a study poll its data every two seconds; without this, each poll is a
few queries and the server competes with the workers for the CPU. A read's answer is kept for
:data:`FRESH_SECONDS` under its URL (path and query); concurrent requests for the same URL wait
for the one computing it instead of computing it again. A write empties the memory, so its
author sees the change at once. A finished trial still shows within ``FRESH_SECONDS`` plus the
pages' polling interval.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

FRESH_SECONDS = 1.0
MAX_ENTRIES = 512


class ReadCache:
    """Answers by key, fresh for ``seconds``; at most ``size`` of them (oldest dropped)."""

    def __init__(self, seconds: float = FRESH_SECONDS, size: int = MAX_ENTRIES) -> None:
        self.seconds = seconds
        self.size = size
        self._answers: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._locks: dict[Any, asyncio.Lock] = {}

    async def get(self, key: Any, compute: Callable[[], Awaitable[Any]]) -> Any:
        """The fresh answer under ``key``, computing it (once, for every waiter) if stale."""
        if self.seconds <= 0:
            return await compute()
        fresh = self._fresh(key)
        if fresh is not None:
            return fresh[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            fresh = self._fresh(key)
            if fresh is not None:
                return fresh[1]
            answer = await compute()
            self._answers[key] = (time.monotonic() + self.seconds, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > self.size:
                old, _ = self._answers.popitem(last=False)
                self._locks.pop(old, None)
            return answer

    def _fresh(self, key: Any) -> tuple[float, Any] | None:
        found = self._answers.get(key)
        if found is not None and found[0] > time.monotonic():
            return found
        return None

    def clear(self) -> None:
        """Forget every answer (after a write)."""
        self._answers.clear()
