"""What operators see. Logs: what a record shows (`records`), the console line and attaching
handlers (`console`), the PostgreSQL table (`pgtable`) and its never-blocking writer (`pgsink`).
Prometheus counters (`metrics`), gauges read from
Redis at scrape time (`collector`), /health + /metrics over HTTP (`health`) and the status page
served with them (`status`)."""
