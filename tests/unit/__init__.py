"""Pure code: no server, no process, no network."""
