"""The production worker, but its feature computation for one client waits at a barrier after the
client's data was read: the instance that "paused" (a long GC, a frozen VM) of issue 13's lost
update, for `faststream run tests.apps.paused:app`.

PAUSE_CLIENT names the client; PAUSE_DIR holds a FIFO `go` (made by the test). Once that client's
data is read, the worker creates `reading` there and blocks reading `go` until the test writes to
it (once per process).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import features
import handlers
from app.main import build

CLIENT = os.environ["PAUSE_CLIENT"]
BARRIER = Path(os.environ["PAUSE_DIR"])
_compute = features.compute


def _paused(sales: Any, *args: Any, **kwargs: Any) -> Any:
    if CLIENT in set(sales.get_column("client_id").to_list()) and not (BARRIER / "done").exists():
        (BARRIER / "reading").touch()
        (BARRIER / "go").read_text()  # on the computation's thread: blocks until the test says
        (BARRIER / "done").touch()
    return _compute(sales, *args, **kwargs)


features.compute = _paused  # a client's first run is full
app = build(handlers.routes)
