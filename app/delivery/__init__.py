"""At-least-once delivery for every handler (SPEC §3), in four parts:

- `policy`: pure decisions (ack, retry after a backoff, wait out an outage, dead-letter);
- `ledger`: their record in Redis (acks, errors, DLQ, seen event ids);
- `claims`: which pending entries to take over (retries, dead consumers);
- `consumer`: the read and claim loops that feed the handlers' FastStream subscribers.
"""
