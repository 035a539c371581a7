"""At-least-once delivery for every handler (SPEC §3):

- `policy`: pure decisions (ack, retry after a backoff, wait out an outage, dead-letter);
- `ledger`: their record in Redis (acks, errors, DLQ, seen event ids);
- `settle`: the entries of one read before their run, and each decision after it;
- `claims`: which pending entries to take over (retries, dead consumers);
- `consumer`: the read and claim loops that feed the handlers' FastStream subscribers.
"""
