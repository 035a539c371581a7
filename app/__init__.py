"""secretmagic's FastStream app: `faststream run app:app`.

The layout, bottom up: core (errors, the Event and its wire format, key names), store, features
and bom (pure), handlers (the routing table and the pipelines), settings; then this package: the
delivery policy (`app.delivery`), publishing and the outbox (`app.publishing`), logs, metrics and
health (`app.observability`), the operators' views (`app.ops`), the CLI (`app.cli`), and the
composition root (`app.main`) with what it runs (`app.runtime`).
"""

from app.main import app

__all__ = ["app"]
