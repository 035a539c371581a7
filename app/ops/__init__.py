"""What operators ask of a running system (read-only views of Redis and the log table, plus the
DLQ's replay and purge); the CLI (app.cli), the metrics collector and the demo read them here."""
