"""secretmagic: the FastStream worker. `faststream run app:app` runs it.

The application is built on first access of `app.app`/`app.broker`, so that pure modules
(`features`, `bom`, `store`) can import `app.errors` without reading the environment.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "broker"):
        from app import main

        return getattr(main, name)
    raise AttributeError(f"module 'app' has no attribute {name!r}")
