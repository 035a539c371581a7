"""The vocabulary every layer of secretmagic shares, and nothing else.

- `core.errors`: the error kinds a handler (or the store under it) raises and the delivery policy
  acts on;
- `core.events`: the Event and the `data` models of the events secretmagic publishes;
- `core.wire`: an Event as flat Redis Stream fields and back (docs/wire-format.md);
- `core.keys`: every Redis key name the worker and the monitoring commands use;
- `core.redact`: secrets out of DSNs and messages; identifiers safe to quote in SQL.

It imports nothing else of ours, so `store`, `features`, `bom`, `handlers` and `app` may all
import it without cycles.
"""
