"""Publishing secretmagic's events: the producer behind the handlers' outputs (`producer`), and
fail-safety while Redis is unreachable: a durable outbox (`outbox`) and its drainer (`drainer`).
"""
