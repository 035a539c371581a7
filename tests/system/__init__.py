"""Processes: the worker run as `faststream run app:app` (or the CLI, the demo) against real
servers, killed, paused, cut off, flooded."""
