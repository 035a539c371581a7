"""Reclaiming: which pending entries of a group this consumer should take now.

    XPENDING stream group IDLE <floor> <cursor> + 100      up to CLAIM_PAGES pages per tick
    → for each entry not in flight here, idle long enough for its next attempt:
         own entries:    backoff(deliveries)            (a retry after a failure)
         others' entries: max(claim_idle_ms, backoff)   (a dead or stuck consumer's work)

An own entry is retried only when this process settled its run without an ack (a failure, an
outage, a copy in flight), or it was delivered before this process started (an earlier life of
the same consumer name) or before a Redis call of this process last failed mid-way (a timeout,
a dropped connection: an XREADGROUP's reply may have been lost with it, its entries handed out
to no handler): one delivered since is on its way to a handler here — an XREADGROUP reply
still being read, a batch waiting for a slot — and is never taken a second time.

The walk resumes after the last page on the next tick and starts over after a short page, so a
dead consumer's entries behind many that are not due yet (long backoffs) are still reached.
Consumers idle past `consumer_idle_timeout_s` with nothing pending are removed (XGROUP
DELCONSUMER would drop a consumer's pending entries, so never one that has any).
"""

from __future__ import annotations

import time
from collections.abc import Container
from typing import Any

from redis.asyncio import Redis

from app.delivery.policy import Policy, backoff_ms
from core.wire import text

CLAIM_PAGE = 100  # pending entries per XPENDING call
CLAIM_PAGES = 10  # XPENDING calls per stream per claim tick, at most


class Claims:
    """The pending lists of one group's streams, as one consumer walks them."""

    def __init__(self, client: Redis, group: str, consumer: str) -> None:
        self.client, self.group, self.consumer = client, group, consumer
        self._cursor: dict[str, str] = {}  # stream -> where the walk of its pending list is
        self._horizon = time.monotonic()  # own entries delivered before it may be lost

    def replies_lost(self) -> None:
        """A Redis call failed mid-way: own entries delivered until now may have been in a
        reply that never arrived, so they are retried like those of an earlier life."""
        self._horizon = time.monotonic()

    def _since_horizon_ms(self) -> float:
        return (time.monotonic() - self._horizon) * 1000

    async def due(self, stream: str, policy: Policy, inflight: Container[tuple[str, str]],
                  retrying: Container[tuple[str, str]]) -> dict[str, tuple[int, float]]:
        """Pending entries ready for another attempt: entry id -> (deliveries so far, idle
        needed). Walks from where the last call stopped until it finds some or has read
        CLAIM_PAGES pages."""
        floor = int(min(policy.backoff.base_ms * (1 - policy.backoff.jitter),
                        policy.claim_idle_ms))
        due: dict[str, tuple[int, float]] = {}
        for _ in range(CLAIM_PAGES):
            pending: list[dict[str, Any]] = await self.client.xpending_range(
                stream, self.group, min=self._cursor.get(stream, "-"), max="+",
                count=CLAIM_PAGE, idle=floor)
            for p in pending:
                entry_id = text(p["message_id"])
                if (stream, entry_id) in inflight:
                    continue  # ours and still running: not a retry, whatever its idle time
                wait = backoff_ms(policy, p["times_delivered"])
                if text(p["consumer"]) != self.consumer:
                    wait = max(wait, policy.claim_idle_ms)
                elif (stream, entry_id) not in retrying and \
                        p["time_since_delivered"] < self._since_horizon_ms():
                    continue  # delivered to this process and on its way to a handler
                if p["time_since_delivered"] >= wait:
                    due[entry_id] = (p["times_delivered"], wait)
            if len(pending) < CLAIM_PAGE:
                self._cursor.pop(stream, None)
                break
            self._cursor[stream] = "(" + text(pending[-1]["message_id"])  # exclusive start
            if due:
                break
        return due

    async def claim(self, stream: str, due: dict[str, tuple[int, float]]
                    ) -> list[tuple[str, dict[bytes, bytes] | None]]:
        """XCLAIM the due entries; (entry id, fields or None if trimmed meanwhile). XCLAIM
        re-checks the idle time atomically: an entry another consumer took meanwhile has been
        reset and is left alone."""
        claimed: list[tuple[bytes, dict[bytes, bytes] | None]] = await self.client.xclaim(  # type: ignore[assignment]
            stream, self.group, self.consumer, message_ids=list(due),
            min_idle_time=int(min(wait for _, wait in due.values())))
        return [(text(eid), fields) for eid, fields in claimed]

    async def has_own_pending(self, stream: str) -> bool:
        return bool(await self.client.xpending_range(stream, self.group, min="-", max="+",
                                                     count=1, consumername=self.consumer))

    async def remove_idle_consumers(self, stream: str, timeout_s: int) -> list[str]:
        """Delete consumers idle past `timeout_s` with nothing pending; their names."""
        removed = []
        for c in await self.client.xinfo_consumers(stream, self.group):
            name = text(c["name"])
            if name != self.consumer and c["pending"] == 0 and c["idle"] > timeout_s * 1000:
                await self.client.xgroup_delconsumer(stream, self.group, name)
                removed.append(name)
        return removed
