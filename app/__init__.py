"""secretmagic: the FastStream worker. `faststream run app:app` runs it.

`app.app` (and `app.broker`) are built on first access from the environment, the mutable config
and the handlers module, so that pure modules (`features`, `bom`, `store`) and tests can import
`app.errors`, `app.events` … without reading the environment, and a test can build an app of its
own handlers with `app.main.create_app(router, settings, live)`.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "broker"):
        import handlers
        from app.main import create_app, load

        worker = create_app(handlers.router, *load())
        globals().update(app=worker, broker=worker.broker)
        return globals()[name]
    raise AttributeError(f"module 'app' has no attribute {name!r}")
