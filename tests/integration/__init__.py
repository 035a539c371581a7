"""In-process tests against real services: Redis, a MySQL-protocol server, chDB, PostgreSQL,
promtool, Chromium (found or started by tests/services.py)."""
