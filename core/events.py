"""The Event: what one stream entry carries (seed «Типы событий»).

Events are notifications (the seed's Event Notification Pattern): `data` holds a few facts about
what changed, and consumers read the data itself from the store by `client_id`. How an Event is
written to and read from a stream is `core.wire`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """An event as in the seed: `event_id`, `event_type`, `client_id`, `timestamp` (UTC), `data`."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    client_id: str = Field(min_length=1)
    timestamp: datetime = Field(default_factory=_now)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # A naive timestamp from an integrator is taken as UTC, as the seed's "Z" examples are.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def reply(self, event_type: str, data: BaseModel) -> Event:
        """The event this one leads to, for the same client (e.g. features_updated)."""
        return Event(event_type=event_type, client_id=self.client_id, data=data.model_dump())
