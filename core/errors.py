"""The two error kinds every handler may raise; the delivery policy (app.delivery) acts on them.

- RetryableError: the event may succeed later. Not acked; delivered again after a backoff that
  grows with the delivery count, until `max_deliveries`.
- Unavailable (a RetryableError): a dependency (the store) cannot be reached, which is not the
  event's fault: such deliveries do not count towards `max_deliveries`. The stream stops reading
  new entries and retries its pending ones at the (capped) backoff until one succeeds, however
  long the outage lasts.
- FatalError: the event can never succeed (a BOM cycle, malformed input). Acked and sent to the
  dead-letter stream at once.
- Superseded: the work is already done by a newer write (the store refused to overwrite a
  client's results with ones computed for an older event). Acked; nothing is published.
Any other exception is treated as retryable: a bug may be fixed by a deploy.
"""


class RetryableError(Exception):
    """Processing failed for a reason that may go away; deliver the event again later."""


class Unavailable(RetryableError):
    """A dependency cannot be reached (connection refused, timeout): wait for it, do not give up."""


class FatalError(Exception):
    """Processing can never succeed for this event; dead-letter it now."""


class MalformedEvent(FatalError):
    """A stream entry that is not a valid secretmagic event (names the field and the reason)."""


class MaxDeliveriesExceeded(FatalError):
    """An entry delivered `max_deliveries` times without success (the last error is kept)."""


class Superseded(Exception):
    """A write lost to a newer one: the store already holds results at a later version."""
