"""What operators see: log sinks (console and PostgreSQL: `logs`), Prometheus counters
(`metrics`), gauges read from Redis at scrape time (`collector`), and /health + /metrics over HTTP
(`health`)."""
