"""At most `limit()` handler runs of a stream at once; the limit is read live (hot reload)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Slots:
    def __init__(self, limit: Callable[[], int]) -> None:
        self.limit = limit
        self.running = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.running < self.limit())
            self.running += 1
            if self.running < self.limit():
                self._changed.notify(1)  # room for more (the limit was raised): pass it on

    async def __aexit__(self, *exc: object) -> None:
        async with self._changed:
            self.running -= 1
            self._changed.notify(1)  # one slot freed: wake one waiter, not all
