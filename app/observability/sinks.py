"""The log sinks a process attaches, named in one place for its composition root (app.runtime):
the console (`setup_console`), PostgreSQL (`PostgresSink`), and `install`/`uninstall` to attach
any handler to the "secretmagic" logger (forwarding other libraries' WARNING+ records to it)."""

from app.observability.console import install, setup_console, uninstall
from app.observability.pgsink import PostgresSink

__all__ = ["PostgresSink", "install", "setup_console", "uninstall"]
